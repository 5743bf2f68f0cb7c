package qat

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"

	"github.com/offcrypt/offcrypt/offload"
)

// Key handles: the key material, in host memory, as the device takes it.
type (
	rsaHandle struct {
		crt *rsaCRT
		pub *rsa.PublicKey
	}
	ecdsaHandle struct {
		curve elliptic.Curve
		d     []byte // the private scalar, the order's size in bytes
	}
	aesHandle struct {
		key []byte
		mu  sync.Mutex
		// sessions holds the GCM sessions made for the key, one per
		// instance, direction and AAD length, as CPA needs.
		sessions map[gcmSessionID]session
	}
	gcmSessionID struct {
		in     *inst
		kind   sessionKind
		aadLen int
	}
)

// ImportKey takes in a private key held in process memory: *rsa.PrivateKey
// of two primes whose size the device's generation takes (Info.MinRSABits
// to Info.MaxRSABits), *ecdsa.PrivateKey on P-256 or P-384, or a []byte of
// 16, 24 or 32 bytes as an AES key. The engine keeps its own copy of the
// key material. Other types, curves and sizes fail with an error wrapping
// offload.ErrUnsupported; a malformed key with one wrapping
// offload.ErrInvalid.
func (e *Engine) ImportKey(priv any) (*offload.Key, error) {
	if e.closed() {
		return nil, fmt.Errorf("qat: %w", offload.ErrClosed)
	}
	if err := offload.CheckPrivateKey(priv); err != nil {
		return nil, fmt.Errorf("qat: %w", err)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return e.importRSA(k)
	case *ecdsa.PrivateKey:
		if k == nil {
			return nil, fmt.Errorf("qat: %w: nil ECDSA key", offload.ErrInvalid)
		}
		typ, bits, err := offload.KeyTypeOf(&k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("qat: %w", err)
		}
		if typ != offload.KeyECDSAP256 && typ != offload.KeyECDSAP384 {
			return nil, fmt.Errorf("qat: %w: ECDSA on %s", offload.ErrUnsupported, k.Curve.Params().Name)
		}
		d, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("qat: %w: %v", offload.ErrInvalid, err)
		}
		pub := k.PublicKey
		// Bytes may return the caller's key's own cached scalar: the
		// engine keeps a copy, so nothing the caller does to its key
		// reaches it.
		return offload.NewKey(e, typ, bits, &pub, &ecdsaHandle{curve: k.Curve, d: bytes.Clone(d)}), nil
	case []byte:
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("qat: %w: AES key of %d bytes", offload.ErrInvalid, len(k))
		}
		return offload.NewKey(e, offload.KeyAES, 8*len(k), nil,
			&aesHandle{key: append([]byte(nil), k...), sessions: make(map[gcmSessionID]session)}), nil
	}
	return nil, fmt.Errorf("qat: %w: key of type %T", offload.ErrUnsupported, priv)
}

func (e *Engine) importRSA(k *rsa.PrivateKey) (*offload.Key, error) {
	if k == nil {
		return nil, fmt.Errorf("qat: %w: nil RSA key", offload.ErrInvalid)
	}
	if len(k.Primes) != 2 {
		return nil, fmt.Errorf("qat: %w: RSA key of %d primes", offload.ErrUnsupported, len(k.Primes))
	}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("qat: %w: %v", offload.ErrInvalid, err)
	}
	bits := k.N.BitLen()
	if bits < e.info.MinRSABits || bits > e.info.MaxRSABits {
		return nil, fmt.Errorf("qat: %w: a %d-bit RSA key; the device takes %d to %d bits",
			offload.ErrUnsupported, bits, e.info.MinRSABits, e.info.MaxRSABits)
	}
	c := *k
	c.Precompute()
	p, q := c.Primes[0], c.Primes[1]
	crt := &rsaCRT{n: c.N, e: c.E, p: p, q: q, dp: c.Precomputed.Dp, dq: c.Precomputed.Dq, qinv: c.Precomputed.Qinv}
	pub := c.PublicKey
	return offload.NewKey(e, offload.KeyRSA, bits, &pub, &rsaHandle{crt: crt, pub: &pub}), nil
}

// GenerateKey makes a key in host memory: RSA of bits bits, ECDSA P-256 or
// P-384 (bits is ignored), or AES of bits bits (128, 192, 256). What
// ImportKey refuses, GenerateKey refuses too.
func (e *Engine) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("qat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("qat: %w", err)
	}
	switch t {
	case offload.KeyRSA:
		if bits < e.info.MinRSABits || bits > e.info.MaxRSABits {
			return nil, fmt.Errorf("qat: %w: a %d-bit RSA key; the device takes %d to %d bits",
				offload.ErrUnsupported, bits, e.info.MinRSABits, e.info.MaxRSABits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("qat: %w", err)
		}
		return e.ImportKey(k)
	case offload.KeyECDSAP256, offload.KeyECDSAP384:
		c := elliptic.P256()
		if t == offload.KeyECDSAP384 {
			c = elliptic.P384()
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("qat: %w", err)
		}
		return e.ImportKey(k)
	case offload.KeyAES:
		if bits != 128 && bits != 192 && bits != 256 {
			return nil, fmt.Errorf("qat: %w: AES key of %d bits", offload.ErrInvalid, bits)
		}
		k := make([]byte, bits/8)
		rand.Read(k)
		return e.ImportKey(k)
	}
	return nil, fmt.Errorf("qat: %w: generating an %v key", offload.ErrUnsupported, t)
}

// handle returns key's handle as a T, or an error for a key this engine did
// not make.
func handle[T any](e *Engine, key *offload.Key) (T, error) {
	h, ok := key.Handle().(T)
	if !ok || key.Engine() != offload.Engine(e) {
		return h, fmt.Errorf("qat: %w: %v", offload.ErrForeignKey, key)
	}
	return h, nil
}

// gcmSession returns the key's GCM session on in for the direction and AAD
// length, making it on first use.
func (h *aesHandle) gcmSession(in *inst, kind sessionKind, aadLen int) (session, error) {
	id := gcmSessionID{in: in, kind: kind, aadLen: aadLen}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sessions[id]; ok {
		return s, nil
	}
	s, err := in.dev.newSession(sessionSetup{kind: kind, key: h.key, aadLen: aadLen})
	if err != nil {
		return nil, err
	}
	h.sessions[id] = s
	return s, nil
}
