package cipher

import (
	"context"
	"crypto/cipher"
	"fmt"

	"github.com/offcrypt/offcrypt/offload"
)

// GCM's standard nonce size and its tag size.
const (
	gcmNonceSize = 12
	gcmTagSize   = 16
)

// GCM is AES-GCM with an engine-held key: a cipher.AEAD that also has
// context, error-returning and asynchronous forms of Seal and Open. It is
// safe for concurrent use.
type GCM struct {
	key   *offload.Key
	eng   offload.Engine
	nonce int
	max   int // the longest ciphertext, tag included, the engine takes (Info.GCMLimit)
}

var _ cipher.AEAD = (*GCM)(nil)

// NewGCM returns AES-GCM with a 12-byte nonce and a 16-byte tag over key, an
// AES key held by an engine. A key that is not AES fails with an error
// wrapping offload.ErrInvalid; an engine that cannot do AES-GCM with one
// wrapping offload.ErrUnsupported.
//
// A GCM message cannot be split into requests, since one tag covers all of
// it, so the longest message is the engine's (offload.Info.GCMLimit): soft
// and pkcs11 take every length crypto/cipher takes (pkcs11 streams a
// message longer than its MaxInline to the token in parts); an engine whose
// device takes GCM only whole, in requests of at most MaxInline bytes (qat),
// takes plaintexts up to MaxPlaintext. Past it, Seal panics, as
// crypto/cipher's Seal does past its own limit, and SealContext, Open and
// the other methods return an error wrapping offload.ErrUnsupported.
func NewGCM(key *offload.Key) (*GCM, error) {
	return NewGCMWithNonceSize(key, gcmNonceSize)
}

// NewGCMWithNonceSize is NewGCM with a nonce of size bytes, for
// compatibility with systems that use other sizes, as
// crypto/cipher.NewGCMWithNonceSize. size must be positive; whether the
// engine accepts it shows at the first Seal or Open.
func NewGCMWithNonceSize(key *offload.Key, size int) (*GCM, error) {
	if size <= 0 {
		return nil, fmt.Errorf("cipher: %w: GCM nonce size %d", offload.ErrInvalid, size)
	}
	eng, _, err := engineFor(key, offload.AESGCM)
	if err != nil {
		return nil, err
	}
	max := eng.Info().GCMLimit()
	if max <= gcmTagSize {
		return nil, fmt.Errorf("cipher: %w: engine %q carries %d bytes per request, no more than a GCM tag", offload.ErrUnsupported, eng.Info().Name, max)
	}
	return &GCM{key: key, eng: eng, nonce: size, max: max}, nil
}

// NonceSize returns the nonce size.
func (g *GCM) NonceSize() int { return g.nonce }

// Overhead returns the tag size, 16 bytes.
func (g *GCM) Overhead() int { return gcmTagSize }

// MaxPlaintext returns the longest plaintext Seal accepts: the longest GCM
// input the engine takes (offload.Info.GCMLimit) less the tag, so that
// whatever is sealed can be opened on the same engine.
func (g *GCM) MaxPlaintext() int { return g.max - gcmTagSize }

// Seal encrypts and authenticates plaintext and aad with nonce, appends the
// result to dst and returns it. It implements cipher.AEAD and waits for the
// engine. It panics, as crypto/cipher does, when nonce is not NonceSize
// bytes; it also panics when plaintext is longer than MaxPlaintext (see
// NewGCM), and, with an error wrapping the cause, when the engine fails,
// since a wrong ciphertext must never come back silently. SealContext
// returns errors instead.
func (g *GCM) Seal(dst, nonce, plaintext, aad []byte) []byte {
	if len(nonce) != g.nonce {
		panic("crypto/cipher: incorrect nonce length given to GCM")
	}
	if err := g.checkSize(len(plaintext), g.MaxPlaintext(), "plaintext"); err != nil {
		panic(err)
	}
	out, err := g.seal(context.Background(), dst, nonce, plaintext, aad)
	if err != nil {
		panic(fmt.Errorf("cipher: Seal cannot report a device failure (use SealContext): %w", err))
	}
	return out
}

// SealContext is Seal with a context, which bounds the request, and with
// every problem returned as an error: bad input (a nil context, the nonce
// size) wraps offload.ErrInvalid, a plaintext longer than MaxPlaintext
// offload.ErrUnsupported.
func (g *GCM) SealContext(ctx context.Context, dst, nonce, plaintext, aad []byte) ([]byte, error) {
	if err := g.checkSeal(ctx, nonce, plaintext); err != nil {
		return nil, err
	}
	return g.seal(ctx, dst, nonce, plaintext, aad)
}

// Open authenticates and decrypts ciphertext (which ends with the tag) and
// aad with nonce, appends the plaintext to dst and returns it. It implements
// cipher.AEAD. It returns ErrOpen, and leaves dst alone, when authentication
// fails or ciphertext is shorter than the tag; it panics, as crypto/cipher
// does, when nonce is not NonceSize bytes. A ciphertext longer than the
// engine takes (see NewGCM), and a device failure, are returned as other
// errors; no plaintext is released before the tag has been checked.
func (g *GCM) Open(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != g.nonce {
		panic("crypto/cipher: incorrect nonce length given to GCM")
	}
	return g.open(context.Background(), dst, nonce, ciphertext, aad)
}

// OpenContext is Open with a context, which bounds the request; a nil
// context and a nonce of the wrong size are returned as errors wrapping
// offload.ErrInvalid.
func (g *GCM) OpenContext(ctx context.Context, dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if err := g.checkNonce(ctx, nonce); err != nil {
		return nil, err
	}
	return g.open(ctx, dst, nonce, ciphertext, aad)
}

// SealAsync submits a Seal and returns its future at once. The future
// resolves with dst and the sealed message appended, or with the error
// SealContext would return. dst, nonce, plaintext and aad must not be
// touched until the future resolves.
func (g *GCM) SealAsync(ctx context.Context, dst, nonce, plaintext, aad []byte) *offload.Future[[]byte] {
	if err := g.checkSeal(ctx, nonce, plaintext); err != nil {
		return offload.Failed[[]byte](err)
	}
	n := len(plaintext)
	f := g.eng.Cipher(ctx, g.request(false, nonce, plaintext, aad))
	return then(f, func(ct []byte, err error) ([]byte, error) { return g.sealed(dst, n, ct, err) })
}

// OpenAsync submits an Open and returns its future at once. The future
// resolves with dst and the plaintext appended, or with the error
// OpenContext would return (ErrOpen when authentication fails). dst, nonce,
// ciphertext and aad must not be touched until the future resolves.
func (g *GCM) OpenAsync(ctx context.Context, dst, nonce, ciphertext, aad []byte) *offload.Future[[]byte] {
	if err := g.checkNonce(ctx, nonce); err != nil {
		return offload.Failed[[]byte](err)
	}
	if err := g.checkOpen(ciphertext); err != nil {
		return offload.Failed[[]byte](err)
	}
	n := len(ciphertext)
	f := g.eng.Cipher(ctx, g.request(true, nonce, ciphertext, aad))
	return then(f, func(pt []byte, err error) ([]byte, error) { return g.opened(dst, n, pt, err) })
}

// then returns a future resolved with fn applied to f's result. fn runs on
// the goroutine that resolves f and must not block.
func then(f *offload.Future[[]byte], fn func([]byte, error) ([]byte, error)) *offload.Future[[]byte] {
	p := offload.NewPromise[[]byte]()
	f.OnResolve(func() {
		v, err := f.Poll()
		p.Resolve(fn(v, err))
	})
	return p.Future()
}

// checkNonce refuses a nil context and a nonce of the wrong size.
func (g *GCM) checkNonce(ctx context.Context, nonce []byte) error {
	if err := offload.CheckContext(ctx); err != nil {
		return fmt.Errorf("cipher: %w", err)
	}
	if len(nonce) != g.nonce {
		return fmt.Errorf("cipher: %w: GCM nonce of %d bytes, want %d", offload.ErrInvalid, len(nonce), g.nonce)
	}
	return nil
}

// checkSize refuses a GCM message longer than the engine takes: n bytes of
// what, against the limit.
func (g *GCM) checkSize(n, limit int, what string) error {
	if n > limit {
		return fmt.Errorf("cipher: %w: GCM %s of %d bytes, more than the %d engine %q takes in one message (a GCM message cannot be split)",
			offload.ErrUnsupported, what, n, limit, g.eng.Info().Name)
	}
	return nil
}

func (g *GCM) checkSeal(ctx context.Context, nonce, plaintext []byte) error {
	if err := g.checkNonce(ctx, nonce); err != nil {
		return err
	}
	return g.checkSize(len(plaintext), g.MaxPlaintext(), "plaintext")
}

func (g *GCM) checkOpen(ciphertext []byte) error {
	if len(ciphertext) < gcmTagSize {
		return ErrOpen
	}
	return g.checkSize(len(ciphertext), g.max, "ciphertext")
}

func (g *GCM) request(decrypt bool, nonce, input, aad []byte) *offload.CipherRequest {
	return &offload.CipherRequest{Key: g.key, Mode: offload.ModeGCM, Decrypt: decrypt, IV: nonce, AAD: aad, Input: input}
}

func (g *GCM) seal(ctx context.Context, dst, nonce, plaintext, aad []byte) ([]byte, error) {
	req := g.request(false, nonce, plaintext, aad)
	_, out := sliceForAppend(dst, len(plaintext)+gcmTagSize)
	req.Out = outBuffer(out, plaintext, nonce, aad)
	ct, err := wait(ctx, g.eng, req)
	return g.sealed(dst, len(plaintext), ct, err)
}

// sealed appends an engine's sealed message to dst, checking its length.
func (g *GCM) sealed(dst []byte, n int, ct []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("cipher: %w", err)
	}
	if len(ct) != n+gcmTagSize {
		return nil, fmt.Errorf("cipher: engine %q: %w: sealed %d bytes into %d", g.eng.Info().Name, offload.ErrInvalid, n, len(ct))
	}
	ret, out := sliceForAppend(dst, len(ct))
	if !sameStart(out, ct) {
		copy(out, ct)
	}
	return ret, nil
}

func (g *GCM) open(ctx context.Context, dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if err := g.checkOpen(ciphertext); err != nil {
		return nil, err
	}
	req := g.request(true, nonce, ciphertext, aad)
	_, out := sliceForAppend(dst, len(ciphertext)-gcmTagSize)
	req.Out = outBuffer(out, ciphertext, nonce, aad)
	pt, err := wait(ctx, g.eng, req)
	return g.opened(dst, len(ciphertext), pt, err)
}

// opened appends an engine's plaintext to dst, mapping an authentication
// failure to ErrOpen.
func (g *GCM) opened(dst []byte, n int, pt []byte, err error) ([]byte, error) {
	if err != nil {
		if isAuthFailure(err) {
			return nil, ErrOpen
		}
		return nil, fmt.Errorf("cipher: %w", err)
	}
	if len(pt) != n-gcmTagSize {
		clear(pt)
		return nil, fmt.Errorf("cipher: engine %q: %w: opened %d bytes into %d", g.eng.Info().Name, offload.ErrInvalid, n, len(pt))
	}
	ret, out := sliceForAppend(dst, len(pt))
	if !sameStart(out, pt) {
		copy(out, pt)
		clear(pt)
	}
	return ret, nil
}
