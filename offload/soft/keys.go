package soft

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/offcrypt/offcrypt/offload"
)

// Key handles: the private half and whatever is computed once per key.
type (
	ecdsaKey struct{ priv *ecdsa.PrivateKey }
	rsaKey   struct{ priv *rsa.PrivateKey } // validated and precomputed
	edKey    struct{ priv ed25519.PrivateKey }
	ed448Key struct{ priv ed448.PrivateKey }
	mldsaKey struct {
		sigSize int
		// signTo signs msg with context ctx into sig (sigSize bytes).
		signTo func(msg, ctx []byte, randomized bool, sig []byte) error
	}
	aesKey struct {
		block cipher.Block
		gcm   cipher.AEAD // 12-byte nonces, 16-byte tags
	}
)

// ImportKey takes in a private key held in process memory:
// *ecdsa.PrivateKey on P-256, P-384 or P-521; *rsa.PrivateKey of 2048 to
// 8192 bits; ed25519.PrivateKey; circl's ed448.PrivateKey and
// *mldsa44/65/87.PrivateKey; or a []byte of 16, 24 or 32 bytes as an AES
// key. The engine keeps its own copy of the key material where the type
// allows it (ECDSA, Ed25519, Ed448, AES); RSA and ML-DSA keys are shared
// with the caller and must not be changed after import.
//
// Other types, curves and RSA sizes fail with an error wrapping
// offload.ErrUnsupported; a malformed key fails with one wrapping
// offload.ErrInvalid.
func (e *Engine) ImportKey(priv any) (*offload.Key, error) {
	if e.x.Closed() {
		return nil, fmt.Errorf("soft: %w", offload.ErrClosed)
	}
	if err := offload.CheckPrivateKey(priv); err != nil {
		return nil, fmt.Errorf("soft: %w", err)
	}
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		return e.importECDSA(k)
	case *rsa.PrivateKey:
		return e.importRSA(k)
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, invalid("Ed25519 private key of %d bytes", len(k))
		}
		cp := ed25519.NewKeyFromSeed(k.Seed())
		if !cp.Equal(k) {
			return nil, invalid("Ed25519 private key whose public half does not match its seed")
		}
		return offload.NewKey(e, offload.KeyEd25519, 256, cp.Public(), edKey{cp}), nil
	case ed448.PrivateKey:
		if len(k) != ed448.PrivateKeySize {
			return nil, invalid("Ed448 private key of %d bytes", len(k))
		}
		cp := ed448.NewKeyFromSeed(k.Seed())
		if !cp.Equal(k) {
			return nil, invalid("Ed448 private key whose public half does not match its seed")
		}
		return offload.NewKey(e, offload.KeyEd448, 448, cp.Public(), ed448Key{cp}), nil
	case *mldsa44.PrivateKey:
		if k == nil {
			return nil, invalid("%v", errNilKey)
		}
		h := mldsaKey{mldsa44.SignatureSize, func(msg, ctx []byte, r bool, sig []byte) error {
			return mldsa44.SignTo(k, msg, ctx, r, sig)
		}}
		return offload.NewKey(e, offload.KeyMLDSA44, 0, k.Public(), h), nil
	case *mldsa65.PrivateKey:
		if k == nil {
			return nil, invalid("%v", errNilKey)
		}
		h := mldsaKey{mldsa65.SignatureSize, func(msg, ctx []byte, r bool, sig []byte) error {
			return mldsa65.SignTo(k, msg, ctx, r, sig)
		}}
		return offload.NewKey(e, offload.KeyMLDSA65, 0, k.Public(), h), nil
	case *mldsa87.PrivateKey:
		if k == nil {
			return nil, invalid("%v", errNilKey)
		}
		h := mldsaKey{mldsa87.SignatureSize, func(msg, ctx []byte, r bool, sig []byte) error {
			return mldsa87.SignTo(k, msg, ctx, r, sig)
		}}
		return offload.NewKey(e, offload.KeyMLDSA87, 0, k.Public(), h), nil
	case []byte:
		return e.importAES(k)
	}
	return nil, fmt.Errorf("soft: %w: key of type %T", offload.ErrUnsupported, priv)
}

func (e *Engine) importECDSA(k *ecdsa.PrivateKey) (*offload.Key, error) {
	if k == nil || k.Curve == nil {
		return nil, invalid("%v", errNilKey)
	}
	t, bits, err := offload.KeyTypeOf(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("soft: ECDSA key: %w", err)
	}
	// Bytes may return the key's own cached scalar, not a copy: clearing
	// it would break the caller's key (and every engine that took it in).
	raw, err := k.Bytes()
	if err != nil {
		return nil, invalid("ECDSA key: %w", err)
	}
	raw = bytes.Clone(raw)
	cp, err := ecdsa.ParseRawPrivateKey(k.Curve, raw)
	clear(raw)
	if err != nil {
		return nil, invalid("ECDSA key: %w", err)
	}
	if k.X != nil && !cp.PublicKey.Equal(&k.PublicKey) {
		return nil, invalid("ECDSA private key whose public half does not match")
	}
	return offload.NewKey(e, t, bits, &cp.PublicKey, ecdsaKey{cp}), nil
}

func (e *Engine) importRSA(k *rsa.PrivateKey) (*offload.Key, error) {
	if k == nil || k.N == nil {
		return nil, invalid("%v", errNilKey)
	}
	bits := k.N.BitLen()
	if bits < MinRSABits || bits > MaxRSABits {
		return nil, fmt.Errorf("soft: %w: RSA key of %d bits (%d to %d accepted)", offload.ErrUnsupported, bits, MinRSABits, MaxRSABits)
	}
	if err := k.Validate(); err != nil {
		return nil, invalid("RSA key: %w", err)
	}
	k.Precompute()
	return offload.NewKey(e, offload.KeyRSA, bits, &k.PublicKey, rsaKey{k}), nil
}

func (e *Engine) importAES(k []byte) (*offload.Key, error) {
	switch len(k) {
	case 16, 24, 32:
	default:
		return nil, invalid("AES key of %d bytes", len(k))
	}
	block, err := aes.NewCipher(k) // keeps its own copy of the key
	if err != nil {
		return nil, invalid("AES key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, wrapErr(err)
	}
	return offload.NewKey(e, offload.KeyAES, len(k)*8, nil, aesKey{block, gcm}), nil
}

// GenerateKey makes a new key of type t. bits is the modulus size for RSA
// (0 means 2048; 2048 to 8192 accepted) and the key size for AES (0 means
// 256; 128, 192 or 256); other types ignore it. Generation runs on the
// calling goroutine; ctx is checked before it starts.
func (e *Engine) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	if e.x.Closed() {
		return nil, fmt.Errorf("soft: %w", offload.ErrClosed)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("soft: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("soft: %w", context.Cause(ctx))
	}
	var priv any
	var err error
	switch t {
	case offload.KeyECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case offload.KeyECDSAP384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case offload.KeyECDSAP521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case offload.KeyRSA:
		if bits == 0 {
			bits = 2048
		}
		if bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("soft: %w: RSA key of %d bits (%d to %d accepted)", offload.ErrUnsupported, bits, MinRSABits, MaxRSABits)
		}
		priv, err = rsa.GenerateKey(rand.Reader, bits)
	case offload.KeyEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case offload.KeyEd448:
		_, priv, err = ed448.GenerateKey(rand.Reader)
	case offload.KeyMLDSA44:
		_, priv, err = mldsa44.GenerateKey(rand.Reader)
	case offload.KeyMLDSA65:
		_, priv, err = mldsa65.GenerateKey(rand.Reader)
	case offload.KeyMLDSA87:
		_, priv, err = mldsa87.GenerateKey(rand.Reader)
	case offload.KeyAES:
		if bits == 0 {
			bits = 256
		}
		if bits != 128 && bits != 192 && bits != 256 {
			return nil, invalid("AES key of %d bits", bits)
		}
		k := make([]byte, bits/8)
		rand.Read(k)
		key, err := e.importAES(k)
		clear(k)
		return key, err
	default:
		return nil, fmt.Errorf("soft: %w: key type %v", offload.ErrUnsupported, t)
	}
	if err != nil {
		return nil, wrapErr(err)
	}
	return e.ImportKey(priv)
}
