// Package rng reads random bytes from an offload engine through io.Reader.
//
// An engine caps the payload of one request (offload.Info.MaxInline), so a
// Reader splits every read into requests of at most that many bytes. A read
// either fills the whole buffer and returns a nil error, or returns how many
// bytes it filled before the engine failed together with the error: never
// fewer bytes than asked with a nil error. A chunk the engine returns shorter
// than asked is reported as io.ErrUnexpectedEOF, never taken as random data
// it is not.
//
// The random bytes are copied into the caller's buffer and the engine's
// result buffers cleared at once, so no copy of them lingers in memory the
// caller does not own. A nil context is bad input (offload.CheckContext).
package rng

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/offcrypt/offcrypt/offload"
)

// defaultChunk is the request size used when an engine states no cap.
const defaultChunk = 4096

// MaxAsync is the most bytes one ReadAsync may ask for, 1 GiB: ReadAsync
// allocates the whole result and submits every chunk at once, so a length
// such as 1<<40 would exhaust memory instead of failing. Read any amount in
// a loop with Read or ReadContext.
const MaxAsync = 1 << 30

// A Reader reads random bytes from an engine. It is safe for concurrent use.
type Reader struct {
	eng   offload.Engine
	chunk int
}

var _ io.Reader = (*Reader)(nil)

// New returns a Reader over eng. The engine's per-request cap is read once,
// here; an engine that states none (MaxInline < 1) is asked for at most
// 4096 bytes a request.
func New(eng offload.Engine) *Reader {
	r := &Reader{eng: eng, chunk: defaultChunk}
	if eng != nil {
		if n := eng.Info().MaxInline; n > 0 {
			r.chunk = n
		}
	}
	return r
}

var errNoEngine = fmt.Errorf("rng: %w: Reader has no engine", offload.ErrInvalid)

// Read fills p with random bytes from the engine, one request per chunk of
// at most the engine's cap, each run on the caller's goroutine where the
// engine allows it. It returns len(p) and nil, or the number of bytes filled
// before a failure and an error; a zero-length p costs no request.
func (r *Reader) Read(p []byte) (int, error) {
	return r.ReadContext(context.Background(), p)
}

// ReadContext is Read with a context that bounds the wait and every
// request; a nil context is refused with an error wrapping
// offload.ErrInvalid.
func (r *Reader) ReadContext(ctx context.Context, p []byte) (int, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return 0, fmt.Errorf("rng: %w", err)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r == nil || r.eng == nil {
		return 0, errNoEngine
	}
	filled := 0
	for filled < len(p) {
		want := min(r.chunk, len(p)-filled)
		req := offload.RandomRequest{Call: offload.Call{Inline: true}, N: want}
		b, err := r.eng.Random(ctx, &req).Wait(ctx)
		if err != nil {
			return filled, fmt.Errorf("rng: %w", err)
		}
		got := copy(p[filled:filled+want], b)
		clear(b)
		filled += got
		if err := checkLen(len(b), want); err != nil {
			return filled, err
		}
	}
	return filled, nil
}

// checkLen reports an engine answer of the wrong length: short is an
// unexpected EOF, long is an engine fault.
func checkLen(got, want int) error {
	switch {
	case got < want:
		return fmt.Errorf("rng: %w: engine returned %d of %d bytes", io.ErrUnexpectedEOF, got, want)
	case got > want:
		return fmt.Errorf("rng: engine returned %d bytes for a request of %d", got, want)
	}
	return nil
}

// ReadAsync asks for n random bytes and returns their future at once. The
// bytes are requested in chunks of at most the engine's cap, all submitted
// now (admission may wait for free slots, honouring ctx); no goroutine is
// started. The future resolves with n bytes, or with the first error a chunk
// met. n of zero resolves at once with an empty slice; a negative n, an n
// above MaxAsync and a nil ctx fail with offload.ErrInvalid.
func (r *Reader) ReadAsync(ctx context.Context, n int) *offload.Future[[]byte] {
	switch {
	case ctx == nil:
		return offload.Failed[[]byte](fmt.Errorf("rng: %w", offload.CheckContext(ctx)))
	case n < 0:
		return offload.Failed[[]byte](fmt.Errorf("rng: %w: negative length %d", offload.ErrInvalid, n))
	case n > MaxAsync:
		return offload.Failed[[]byte](fmt.Errorf("rng: %w: %d bytes asked of ReadAsync, at most %d (MaxAsync); use Read in a loop", offload.ErrInvalid, n, MaxAsync))
	case n == 0:
		return offload.Resolved([]byte{}, nil)
	case r == nil || r.eng == nil:
		return offload.Failed[[]byte](errNoEngine)
	}
	buf := make([]byte, n)
	p := offload.NewPromise[[]byte]()
	chunks := (n + r.chunk - 1) / r.chunk
	var left atomic.Int64
	// One extra count is held while submitting, so the promise cannot
	// resolve with success before every chunk has been submitted.
	left.Store(int64(chunks) + 1)
	fail := func(err error) { p.Resolve(nil, err) }
	done := func() {
		if left.Add(-1) == 0 {
			p.Resolve(buf, nil)
		}
	}
	for off := 0; off < n; off += r.chunk {
		if !p.Pending() {
			break // a chunk has failed already: ask for no more
		}
		want := min(r.chunk, n-off)
		dst := buf[off : off+want]
		f := r.eng.Random(ctx, &offload.RandomRequest{N: want})
		f.OnResolve(func() {
			b, err := f.Poll()
			if err == nil {
				copy(dst, b)
				clear(b)
				err = checkLen(len(b), want)
			} else {
				err = fmt.Errorf("rng: %w", err)
			}
			if err != nil {
				fail(err)
				return
			}
			done()
		})
	}
	if p.Pending() {
		done()
	}
	return p.Future()
}
