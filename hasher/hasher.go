// Package hasher streams SHA-2 hashes through any offload engine.
//
// On an engine whose hash requests carry the running state (soft), New
// returns a *Hash, a hash.Hash that keeps that interface's whole contract:
// Sum any number of times without changing the state, Write after Sum,
// Reset, BlockSize, Size, and saving and cloning the state. On an engine
// that keeps the running state on the device (offload.HashSessioner: a
// PKCS #11 token's digest operation, a QuickAssist hash session), no Sum
// can leave the state as it was, since reading the digest ends the
// device's computation; New refuses such an engine and NewSession returns
// a *Session, whose Final says so. Digest and SignStream take either kind
// of engine.
//
//	h, err := hasher.New(eng, crypto.SHA256)
//	io.Copy(h, file)
//	sum := h.Sum(nil)
//
// # Streaming
//
// A Hash follows wolfHSM's asynchronous SHA design: the engine keeps no
// state between requests, every request carries the running state, partial
// blocks stay with the client, and each request carries as many whole
// blocks as the engine's payload cap (offload.Info.MaxInline) allows. A
// Write that fits in the partial block costs no request. Otherwise the
// partial block is topped up from the input and sent with as many whole
// blocks as fit in one request; further whole blocks go out in requests of
// MaxInline rounded down to the block size; the tail, less than one block,
// stays in the Hash. Sum sends the running state and the tail in one final
// request and leaves the running state as it was, so writing may go on after
// Sum, as with the standard library's hashes.
//
// # Failures
//
// hash.Hash's Write and Sum were made for hashes that cannot fail. A device
// can, and a device failure must never turn into a silently wrong digest, so:
//
//   - WriteContext and SumContext take a context and return the device's
//     error. A WriteContext that fails leaves the Hash exactly as it was
//     before the call (running state and partial block are restored: snapshot
//     and rollback) and returns 0 and the error, so the caller can retry the
//     same data. A failed SumContext changes nothing either.
//   - Write also rolls back and returns 0 and the error. hash.Hash documents
//     that Write never returns an error, and many callers (crypto/hmac among
//     them) do not look, so Write also records the error in the Hash: from
//     then on Write and WriteContext refuse with that error, MarshalBinary
//     and Clone fail, Err reports it, and Sum panics. Only Reset (or
//     UnmarshalBinary) clears it. A caller that skipped the error can
//     therefore never obtain a digest that is missing data.
//   - Sum panics when the Hash holds a recorded error or its final request
//     fails. The panic value is an error that wraps the cause. A panic is the
//     only signal left to a method that returns no error; code that must
//     handle device failures calls SumContext, which returns them.
//
// A context that ends, or an engine closed in the middle of a stream, is a
// failure like any other: the Hash rolls back to the last completed call. A
// nil context is bad input (offload.CheckContext).
//
// # Saving and cloning the state
//
// A Hash implements encoding.BinaryMarshaler, encoding.BinaryAppender,
// encoding.BinaryUnmarshaler and hash.Cloner. The marshaled state is byte
// for byte the one crypto/sha256 or crypto/sha512 produces for the same
// input, so it can be resumed by either.
//
// # Asynchronous forms
//
// Digest hashes a whole io.Reader and returns an *offload.Future at once,
// so the caller can do other work meanwhile; SignStream does the same and
// then signs the digest through an AsyncSigner such as *signer.Signer, the
// "hash a large file, then sign the digest" pipeline. Both read the next
// chunk of the stream while the engine hashes the previous one, on a Hash
// or a Session as the engine requires.
//
// # Concurrency
//
// A Hash is safe for concurrent use in the sense that its methods lock it,
// but interleaving writes from several goroutines makes a meaningless
// digest, as with any hash.
package hasher

import (
	"context"
	"crypto"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"

	"github.com/offcrypt/offcrypt/offload"
)

// A Hash computes a SHA-2 digest through an engine. Make one with New; the
// zero value is not usable.
type Hash struct {
	mu    sync.Mutex
	eng   offload.Engine
	hash  crypto.Hash
	lay   layout
	size  int
	chunk int // bytes of whole blocks one request carries

	state   []byte // the engine's state after the blocks sent; nil at the start; never changed in place
	buf     []byte // the partial block, shorter than one block
	scratch []byte // assembles a request that starts with the partial block
	err     error  // a failed plain Write, sticky until Reset
}

var (
	_ hash.Hash                  = (*Hash)(nil)
	_ hash.Cloner                = (*Hash)(nil)
	_ encoding.BinaryMarshaler   = (*Hash)(nil)
	_ encoding.BinaryAppender    = (*Hash)(nil)
	_ encoding.BinaryUnmarshaler = (*Hash)(nil)
)

// New returns a Hash computing h (SHA-224, SHA-256, SHA-384 or SHA-512) on
// eng, an engine whose hash requests carry the running state (soft): the
// Hash keeps the whole hash.Hash contract. Any other hash, or one that eng's
// Info does not list, fails with an error that wraps offload.ErrUnsupported,
// as does an engine whose payload cap cannot hold one block, and an engine
// that keeps hash state on the device (offload.HashSessioner: pkcs11, qat),
// where a Sum that leaves the state unchanged cannot be had: on those,
// NewSession returns a *Session, whose Final ends the computation.
func New(eng offload.Engine, h crypto.Hash) (*Hash, error) {
	info, lay, err := check(eng, h)
	if err != nil {
		return nil, err
	}
	if _, ok := eng.(offload.HashSessioner); ok {
		return nil, fmt.Errorf("hasher: %w: engine %q keeps hash state on the device, which cannot keep it through Sum: use NewSession", offload.ErrUnsupported, info.Name)
	}
	chunk := info.MaxInline / lay.block * lay.block
	return &Hash{eng: eng, hash: h, lay: lay, size: h.Size(), chunk: chunk, buf: make([]byte, 0, lay.block)}, nil
}

// check validates what New and NewSession share: an engine, a SHA-2 hash it
// claims, and a payload cap that holds one block.
func check(eng offload.Engine, h crypto.Hash) (offload.Info, layout, error) {
	if eng == nil {
		return offload.Info{}, layout{}, fmt.Errorf("hasher: %w: nil engine", offload.ErrInvalid)
	}
	alg, ok := offload.HashAlgorithm(h)
	if !ok {
		return offload.Info{}, layout{}, fmt.Errorf("hasher: %w: hash %v", offload.ErrUnsupported, h)
	}
	info := eng.Info()
	if !info.Supports(alg) {
		return offload.Info{}, layout{}, fmt.Errorf("hasher: %w: engine %q does not do %v", offload.ErrUnsupported, info.Name, alg)
	}
	lay := layouts[h]
	if info.MaxInline < lay.block {
		return offload.Info{}, layout{}, fmt.Errorf("hasher: %w: engine %q carries %d bytes per request, less than one %d-byte %v block",
			offload.ErrUnsupported, info.Name, info.MaxInline, lay.block, alg)
	}
	return info, lay, nil
}

// Size returns the number of bytes Sum appends.
func (h *Hash) Size() int { return h.size }

// BlockSize returns the hash's block size.
func (h *Hash) BlockSize() int { return h.lay.block }

// Reset returns the Hash to its initial state and clears a recorded error.
func (h *Hash) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state = nil
	h.buf = h.buf[:0]
	h.err = nil
}

// Err returns the error recorded by a failed Write, or nil.
func (h *Hash) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Write adds p to the hash. It implements io.Writer and hash.Hash, and waits
// for the engine without a deadline. On a device failure it leaves the
// running state as it was, returns 0 and the error, and records the error
// so that the Hash refuses further use until Reset (see the package
// documentation); WriteContext does not record it.
func (h *Hash) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return 0, h.err
	}
	if err := h.write(context.Background(), p); err != nil {
		h.err = err
		return 0, err
	}
	return len(p), nil
}

// WriteContext adds p to the hash, sending as many requests as p needs; ctx
// bounds them. If any request fails it returns 0 and the error and the Hash
// is exactly as it was before the call, so the caller may retry with the
// same p. On a Hash with an error recorded by Write it returns that error.
// A nil ctx is refused with an error wrapping offload.ErrInvalid.
func (h *Hash) WriteContext(ctx context.Context, p []byte) (int, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return 0, fmt.Errorf("hasher: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return 0, h.err
	}
	if err := h.write(ctx, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Sum appends the digest of what was written to b, without changing the
// running state. It panics, with an error that wraps the cause, if the Hash
// holds an error recorded by Write or if the engine fails: hash.Hash.Sum
// cannot return an error and must not return a wrong digest. Use SumContext
// to handle device failures.
func (h *Hash) Sum(b []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		// h.err says "hasher: ..." already.
		panic(fmt.Errorf("%w (Sum after a failed Write)", h.err))
	}
	out, err := h.sum(context.Background(), b)
	if err != nil {
		panic(fmt.Errorf("hasher: Sum cannot report a device failure (use SumContext): %w", err))
	}
	return out
}

// SumContext appends the digest of what was written to b, without changing
// the running state; ctx bounds the final request. A failure returns the
// error and changes nothing. A nil ctx is refused with an error wrapping
// offload.ErrInvalid.
func (h *Hash) SumContext(ctx context.Context, b []byte) ([]byte, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("hasher: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return nil, h.err
	}
	return h.sum(ctx, b)
}

// write absorbs p, rolling back on failure. h.mu is held.
func (h *Hash) write(ctx context.Context, p []byte) error {
	if len(h.buf)+len(p) < h.lay.block {
		h.buf = append(h.buf, p...) // fits in the partial block: no request
		return nil
	}
	// Snapshot. The state slice is never changed in place, so keeping it
	// is enough; the partial block is copied.
	savedState := h.state
	var saved [128]byte
	n := copy(saved[:], h.buf)
	if err := h.absorb(ctx, p); err != nil {
		h.state = savedState
		h.buf = append(h.buf[:0], saved[:n]...)
		h.scratch = nil // an abandoned request may still read it
		return err
	}
	return nil
}

// absorb sends the partial block topped up from p and the whole blocks of p,
// and keeps the tail.
func (h *Hash) absorb(ctx context.Context, p []byte) error {
	bs := h.lay.block
	if len(h.buf) > 0 {
		need := bs - len(h.buf)
		more := min((len(p)-need)/bs*bs, h.chunk-bs)
		if h.scratch == nil {
			h.scratch = make([]byte, 0, h.chunk)
		}
		d := append(append(h.scratch[:0], h.buf...), p[:need+more]...)
		if err := h.send(ctx, d); err != nil {
			return err
		}
		p = p[need+more:]
		h.buf = h.buf[:0]
	}
	for len(p) >= bs {
		n := min(len(p)/bs*bs, h.chunk)
		if err := h.send(ctx, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	h.buf = append(h.buf, p...)
	return nil
}

// send hashes whole blocks on the engine, blocking, and takes the new state.
func (h *Hash) send(ctx context.Context, data []byte) error {
	req := &offload.HashRequest{Call: offload.Call{Inline: true}, Hash: h.hash, State: h.state, Data: data}
	return h.settle(ctx, h.eng.Hash(ctx, req), len(data))
}

// submit hands whole blocks to the engine's workers without waiting.
func (h *Hash) submit(ctx context.Context, data []byte) *offload.Future[offload.HashResult] {
	return h.eng.Hash(ctx, &offload.HashRequest{Hash: h.hash, State: h.state, Data: data})
}

// settle waits for a request that carried n bytes and takes its state,
// after checking that the engine advanced the length by exactly n: a device
// that lost or repeated data must not go unnoticed.
func (h *Hash) settle(ctx context.Context, f *offload.Future[offload.HashResult], n int) error {
	res, err := f.Wait(ctx)
	if err != nil {
		return fmt.Errorf("hasher: %w", err)
	}
	if err := h.lay.check(res.State, true); err != nil {
		return fmt.Errorf("hasher: engine %q: %w", h.eng.Info().Name, err)
	}
	var before uint64
	if h.state != nil {
		before = h.lay.length(h.state)
	}
	if got := h.lay.length(res.State); got != before+uint64(n) {
		return fmt.Errorf("hasher: engine %q: %w: state length %d after %d+%d bytes", h.eng.Info().Name, offload.ErrInvalid, got, before, n)
	}
	h.state = res.State
	return nil
}

// sum runs the final request from the current state and partial block.
func (h *Hash) sum(ctx context.Context, b []byte) ([]byte, error) {
	req := &offload.HashRequest{
		Call:  offload.Call{Inline: true},
		Hash:  h.hash,
		State: h.state,
		Data:  slices.Clone(h.buf), // the partial block changes with the next Write
		Final: true,
	}
	res, err := h.eng.Hash(ctx, req).Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("hasher: %w", err)
	}
	if len(res.Sum) != h.size {
		return nil, fmt.Errorf("hasher: engine %q: %w: %v digest of %d bytes", h.eng.Info().Name, offload.ErrInvalid, h.hash, len(res.Sum))
	}
	return append(b, res.Sum...), nil
}

// MarshalBinary returns the running state in the standard library's
// marshaled form: what crypto/sha256's or crypto/sha512's MarshalBinary
// returns after the same input. It fails with an error wrapping
// the recorded error after a failed Write.
func (h *Hash) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, h.lay.size()))
}

// AppendBinary appends the state MarshalBinary returns to b.
func (h *Hash) AppendBinary(b []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return nil, h.err
	}
	out, err := h.lay.join(b, h.hash, h.state, h.buf)
	if err != nil {
		return nil, fmt.Errorf("hasher: %w", err)
	}
	return out, nil
}

// UnmarshalBinary restores a state made by MarshalBinary or by the standard
// library's hash of the same kind (crypto/sha256.New224 for SHA-224, and so
// on). It clears a recorded error. A state of another kind or size fails
// with an error wrapping offload.ErrInvalid and changes nothing.
func (h *Hash) UnmarshalBinary(b []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	state, buf, err := h.lay.split(b)
	if err != nil {
		return fmt.Errorf("hasher: %w", err)
	}
	h.state, h.buf, h.err = state, buf, nil
	return nil
}

// Clone returns an independent copy of the Hash (hash.Cloner). It fails like
// MarshalBinary.
func (h *Hash) Clone() (hash.Cloner, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return nil, h.err
	}
	c := &Hash{eng: h.eng, hash: h.hash, lay: h.lay, size: h.size, chunk: h.chunk, state: h.state}
	c.buf = append(make([]byte, 0, h.lay.block), h.buf...)
	return c, nil
}

// errNilReader is returned for a nil stream.
var errNilReader = errors.New("hasher: nil reader")
