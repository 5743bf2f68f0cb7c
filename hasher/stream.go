package hasher

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/offcrypt/offcrypt/offload"
)

// Digest hashes everything r yields with h on eng and returns the digest's
// future at once, so the caller can do other work while the stream is read
// and hashed.
//
// One goroutine, started here, reads r and drives the engine: it reads the
// next chunk (MaxInline rounded down to the block size) while the engine
// hashes the previous one, so reading and hashing overlap. The requests go
// to the engine's workers, not the reading goroutine. The goroutine ends when
// r reports io.EOF or an error, or when a request fails; ctx bounds every
// request, so when it ends the future resolves with its error after the
// read in progress returns. ctx cannot interrupt a Read that blocks forever:
// r belongs to the caller. r must not be used by anyone else until the
// future resolves.
//
// A read error fails the future with an error that wraps it.
func Digest(ctx context.Context, eng offload.Engine, h crypto.Hash, r io.Reader) *offload.Future[[]byte] {
	return pipeline(ctx, eng, h, r, func(_ context.Context, p offload.Promise[[]byte], sum []byte, err error) {
		p.Resolve(sum, err)
	})
}

// pipeline hashes r with h on eng, on a goroutine of its own, and hands the
// digest or the failure to finish, which resolves the promise behind the
// future pipeline returns.
func pipeline(ctx context.Context, eng offload.Engine, h crypto.Hash, r io.Reader,
	finish func(ctx context.Context, p offload.Promise[[]byte], sum []byte, err error)) *offload.Future[[]byte] {
	var d interface {
		digest(ctx context.Context, r io.Reader) ([]byte, error)
	}
	var err error
	if _, ok := eng.(offload.HashSessioner); ok {
		d, err = NewSession(eng, h)
	} else {
		d, err = New(eng, h)
	}
	switch {
	case err != nil:
		return offload.Failed[[]byte](err)
	case r == nil:
		return offload.Failed[[]byte](fmt.Errorf("%w: %w", errNilReader, offload.ErrInvalid))
	case ctx == nil:
		return offload.Failed[[]byte](fmt.Errorf("hasher: %w", offload.CheckContext(ctx)))
	}
	p := offload.NewPromise[[]byte]()
	go func() {
		sum, err := d.digest(ctx, r)
		finish(ctx, p, sum, err)
	}()
	return p.Future()
}

// An AsyncSigner signs digests with a key that an offload engine holds and
// returns the signature's future: *signer.Signer and *signer.Decrypter are
// AsyncSigners.
type AsyncSigner interface {
	// Key returns the engine's key, nil if there is none.
	Key() *offload.Key
	// SignAsync signs digest, made with opts.HashFunc(), with opts.
	SignAsync(ctx context.Context, digest []byte, opts crypto.SignerOpts) *offload.Future[[]byte]
}

// SignStream hashes everything r yields on the engine that holds s's key,
// with opts.HashFunc(), then signs the digest through s with opts, and
// returns the signature's future at once: the "hash a large file, then sign
// the digest" pipeline. Reading and hashing overlap as in Digest; the
// signature is requested as soon as the digest is known, and the goroutine
// that read the stream does not wait for it.
//
// opts must name a SHA-2 hash (crypto.SHA256, an *rsa.PSSOptions with one,
// crypto.SHA512 for Ed25519ph, ...): schemes that sign the message itself
// have no digest to stream. Failures of either stage resolve the future with
// an error.
func SignStream(ctx context.Context, s AsyncSigner, r io.Reader, opts crypto.SignerOpts) *offload.Future[[]byte] {
	if s == nil || s.Key() == nil {
		return offload.Failed[[]byte](fmt.Errorf("hasher: %w: nil signer", offload.ErrInvalid))
	}
	if opts == nil || opts.HashFunc() == 0 {
		return offload.Failed[[]byte](fmt.Errorf("hasher: %w: SignStream needs options that name a hash", offload.ErrInvalid))
	}
	return pipeline(ctx, s.Key().Engine(), opts.HashFunc(), r, func(ctx context.Context, p offload.Promise[[]byte], sum []byte, err error) {
		if err != nil {
			p.Resolve(nil, err)
			return
		}
		f := s.SignAsync(ctx, sum, opts)
		f.OnResolve(func() {
			sig, err := f.Poll()
			if err != nil {
				err = fmt.Errorf("hasher: sign: %w", err)
			}
			p.Resolve(sig, err)
		})
	})
}

// digest hashes r to its end and returns the digest. It is used on a Hash
// that nobody else holds, so it takes no lock. While request k is with the
// engine, chunk k+1 is read into the other buffer; a buffer is reused only
// after its request has resolved, and never after a failure.
func (h *Hash) digest(ctx context.Context, r io.Reader) ([]byte, error) {
	bufs := [2][]byte{make([]byte, h.chunk), make([]byte, h.chunk)}
	var (
		pending *offload.Future[offload.HashResult]
		sent    int
	)
	for i := 0; ; i ^= 1 {
		n, rerr := io.ReadFull(r, bufs[i])
		if pending != nil {
			if err := h.settle(ctx, pending, sent); err != nil {
				return nil, err
			}
			pending = nil
		}
		switch {
		case rerr == nil:
			// A whole chunk: whole blocks, since the partial block is empty.
			pending, sent = h.submit(ctx, bufs[i]), len(bufs[i])
			continue
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			if err := h.write(ctx, bufs[i][:n]); err != nil {
				return nil, err
			}
			return h.sum(ctx, nil)
		default:
			return nil, fmt.Errorf("hasher: reading the stream: %w", rerr)
		}
	}
}
