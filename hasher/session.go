package hasher

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/offcrypt/offcrypt/offload"
)

// A Session computes a SHA-2 digest on an engine that keeps the running
// state on the device (offload.HashSessioner: a PKCS #11 token's digest
// operation, a QuickAssist hash session). Make one with NewSession; the
// zero value is not usable.
//
// It is not a hash.Hash, because it cannot keep that interface's contract:
// the device's computation ends when the digest is read, and neither
// SoftHSM2 nor a QuickAssist device can save and restore it
// (C_GetOperationState answers CKR_FUNCTION_NOT_SUPPORTED on SoftHSM2 2.6),
// so there is no Sum that leaves the state as it was. Its methods say what
// they do instead: Write and WriteContext feed the device, Final ends the
// computation and returns the digest, Reset and Close abandon it.
//
// Bytes written gather in the Session and go to the device in Updates of
// the engine's payload cap (offload.Info.MaxInline), no block alignment
// needed. The device session, which holds one of the engine's in-flight
// slots, is opened by the first Update and closed by Final, a failure,
// Reset or Close; a caller that stops before Final must call Close (a
// Session that is garbage collected is closed too, but only whenever the
// collector gets to it).
//
// Any failure ends the device's computation, so it cannot be rolled back:
// it is recorded, every later Write, WriteContext and Final returns it
// (Err reports it), and Reset starts again. Failing to open the device
// session is the exception: nothing was sent, and the Session is as before.
//
// A Session's methods lock it; interleaving writes from several goroutines
// makes a meaningless digest, as with any hash.
type Session struct {
	mu    sync.Mutex
	eng   offload.Engine
	sess  offload.HashSessioner
	hash  crypto.Hash
	size  int
	block int
	chunk int // bytes per Update: the engine's MaxInline

	dev  *device // the device's hash session, opened at the first Update
	pend []byte  // bytes not yet sent, fewer than chunk
	err  error   // sticky until Reset
}

var _ io.Writer = (*Session)(nil)

// errFinished is the error of a Write or Final after Final.
var errFinished = fmt.Errorf("hasher: the device finished this hash at Final; Reset to start again: %w", offload.ErrInvalid)

// NewSession returns a Session computing h (SHA-224, SHA-256, SHA-384 or
// SHA-512) on eng, an engine that keeps hash state on the device
// (offload.HashSessioner); on any other engine it fails with an error
// wrapping offload.ErrUnsupported that points to New. A hash that eng's
// Info does not list fails the same way.
func NewSession(eng offload.Engine, h crypto.Hash) (*Session, error) {
	info, lay, err := check(eng, h)
	if err != nil {
		return nil, err
	}
	sess, ok := eng.(offload.HashSessioner)
	if !ok {
		return nil, fmt.Errorf("hasher: %w: engine %q hashes statelessly: use New, whose *Hash keeps the whole hash.Hash contract", offload.ErrUnsupported, info.Name)
	}
	s := &Session{eng: eng, sess: sess, hash: h, size: h.Size(), block: lay.block, chunk: info.MaxInline, dev: &device{}}
	// A Session dropped without Final or Close would hold the device
	// session's slot for ever: close it when the Session is collected.
	runtime.AddCleanup(s, (*device).close, s.dev)
	return s, nil
}

// Size returns the number of bytes Final appends.
func (s *Session) Size() int { return s.size }

// BlockSize returns the hash's block size.
func (s *Session) BlockSize() int { return s.block }

// Write feeds p to the device's computation, waiting for the engine without
// a deadline. It returns len(p) and nil, or 0 and the error, which is then
// recorded (see Session).
func (s *Session) Write(p []byte) (int, error) {
	return s.WriteContext(context.Background(), p)
}

// WriteContext is Write with a context, which bounds the requests; a nil
// context is refused with an error wrapping offload.ErrInvalid (and, as bad
// input that reached no device, not recorded).
func (s *Session) WriteContext(ctx context.Context, p []byte) (int, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return 0, fmt.Errorf("hasher: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if err := s.write(ctx, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Final sends what is left, ends the device's computation and appends the
// digest to b. ctx bounds the requests; a nil one is refused with an error
// wrapping offload.ErrInvalid. After Final, Write and Final fail with an
// error wrapping offload.ErrInvalid until Reset.
func (s *Session) Final(ctx context.Context, b []byte) ([]byte, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("hasher: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return s.final(ctx, b)
}

// Err returns the recorded failure, an error wrapping offload.ErrInvalid
// after Final, or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Reset abandons the computation, closing the device session without
// waiting for the device, and clears a recorded error: the next Write or
// Final starts a new one.
func (s *Session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
}

// Close releases the device session, if one is open, without waiting for
// the device, and leaves the Session as Reset does. It always returns nil.
func (s *Session) Close() error {
	s.Reset()
	return nil
}

func (s *Session) reset() {
	s.dev.close()
	s.pend = s.pend[:0]
	s.err = nil
}

// device holds the open hash session of a Session. It is apart from the
// Session so that a cleanup attached to the Session can close it.
type device struct {
	mu sync.Mutex
	hs offload.HashSession
}

// close closes the session, if one is open. It does not wait for the
// device.
func (d *device) close() {
	d.mu.Lock()
	hs := d.hs
	d.hs = nil
	d.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// open returns the open session, opening one if there is none. s.mu is
// held.
func (s *Session) open(ctx context.Context) (offload.HashSession, error) {
	s.dev.mu.Lock()
	defer s.dev.mu.Unlock()
	if s.dev.hs != nil {
		return s.dev.hs, nil
	}
	hs, err := s.sess.HashSession(ctx, s.hash)
	if err != nil {
		return nil, fmt.Errorf("hasher: %w", err)
	}
	s.dev.hs = hs
	return hs, nil
}

// fail records err, after which the device's computation is gone: the
// session is closed and the unsent bytes dropped (an abandoned request may
// still read the buffer). s.mu is held.
func (s *Session) fail(err error) error {
	s.err = err
	s.dev.close()
	s.pend = nil
	return err
}

// update sends data in one Update and waits for it; a failure is recorded.
func (s *Session) update(ctx context.Context, hs offload.HashSession, data []byte) error {
	if _, err := hs.Update(ctx, data).Wait(ctx); err != nil {
		return s.fail(fmt.Errorf("hasher: %w", err))
	}
	return nil
}

// write absorbs p: bytes gather in s.pend and go out in Updates of s.chunk
// bytes. A failure to open the session changes nothing; a failed Update is
// recorded. s.mu is held.
func (s *Session) write(ctx context.Context, p []byte) error {
	if len(s.pend)+len(p) < s.chunk {
		s.pend = append(s.pend, p...) // no request
		return nil
	}
	hs, err := s.open(ctx)
	if err != nil {
		return err
	}
	if len(s.pend) > 0 {
		need := s.chunk - len(s.pend)
		s.pend = append(s.pend, p[:need]...)
		if err := s.update(ctx, hs, s.pend); err != nil {
			return err
		}
		s.pend = s.pend[:0]
		p = p[need:]
	}
	for len(p) >= s.chunk {
		if err := s.update(ctx, hs, p[:s.chunk]); err != nil {
			return err
		}
		p = p[s.chunk:]
	}
	if s.pend == nil {
		s.pend = make([]byte, 0, s.chunk)
	}
	s.pend = append(s.pend, p...)
	return nil
}

// final sends what is left and finishes the device's computation. From then
// on the Session refuses Writes and Finals until Reset. s.mu is held.
func (s *Session) final(ctx context.Context, b []byte) ([]byte, error) {
	hs, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	if len(s.pend) > 0 {
		if err := s.update(ctx, hs, s.pend); err != nil {
			return nil, err
		}
		s.pend = s.pend[:0]
	}
	sum, err := hs.Final(ctx).Wait(ctx)
	if err != nil {
		return nil, s.fail(fmt.Errorf("hasher: %w", err))
	}
	if len(sum) != s.size {
		return nil, s.fail(fmt.Errorf("hasher: engine %q: %v digest of %d bytes", s.eng.Info().Name, s.hash, len(sum)))
	}
	s.fail(errFinished) // the session is over: nothing more can be added
	return append(b, sum...), nil
}

// digest hashes r to its end on a Session nobody else holds: while Update k
// is with the device, chunk k+1 is read into the other buffer; a buffer is
// reused only after its Update has resolved. The session is closed
// whatever happens.
func (s *Session) digest(ctx context.Context, r io.Reader) ([]byte, error) {
	defer s.dev.close()
	hs, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	bufs := [2][]byte{make([]byte, s.chunk), make([]byte, s.chunk)}
	var pending *offload.Future[struct{}]
	for i := 0; ; i ^= 1 {
		n, rerr := io.ReadFull(r, bufs[i])
		if pending != nil {
			if _, err := pending.Wait(ctx); err != nil {
				return nil, s.fail(fmt.Errorf("hasher: %w", err))
			}
			pending = nil
		}
		switch {
		case rerr == nil:
			pending = hs.Update(ctx, bufs[i])
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			s.pend = bufs[i][:n]
			return s.final(ctx, nil)
		default:
			return nil, fmt.Errorf("hasher: reading the stream: %w", rerr)
		}
	}
}
