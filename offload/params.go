package offload

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rsa"
	"fmt"
	"slices"
)

// SignParams are what SignRequest.Check finds out about a request: all an
// engine needs besides the key and the input (SignRequest.Input), resolved
// once, so that no engine reads Opts itself. The one exception is Ed448,
// whose options are circl's type, which this package does not import: an
// engine that signs Ed448 reads them.
type SignParams struct {
	Alg Algorithm
	// Hash is the hash a Digest was made with, or that a Message is to be
	// hashed with; 0 when the input is signed as it is.
	Hash crypto.Hash
	// SaltLength is RSA-PSS's salt length in bytes, resolved for the key's
	// modulus from rsa.PSSOptions.SaltLength (see PSSSaltLength). It is a
	// plain length, never one of crypto/rsa's special values.
	SaltLength int
	// Context is the context string of Ed25519ctx and Ed25519ph
	// (ed25519.Options.Context) or of ML-DSA (MLDSAOptions.Context), at most
	// 255 bytes. It may share memory with the caller's options.
	Context []byte
	// Deterministic asks ML-DSA for a deterministic signature instead of a
	// hedged one.
	Deterministic bool
}

// DecryptParams are what DecryptRequest.Check finds out about a request.
type DecryptParams struct {
	Alg Algorithm // RSAOAEP or RSAPKCS1v15Decrypt
	// Hash and MGFHash are OAEP's label hash and MGF1's hash; MGFHash is
	// Hash when the options left it zero, as crypto/rsa does.
	Hash, MGFHash crypto.Hash
	// Label is OAEP's label. It may share memory with the caller's options.
	Label []byte
	// SessionKeyLen, when positive, asks PKCS #1 v1.5 decryption for
	// rsa.PKCS1v15DecryptOptions.SessionKeyLen's behaviour: a ciphertext
	// that does not decrypt to a key of exactly this many bytes yields that
	// many random bytes and no error. Check has made sure it fits the
	// modulus.
	SessionKeyLen int
}

// PSSSaltLength resolves rsa.PSSOptions.SaltLength for an RSA-PSS signature
// with hash h under a modulus of bits bits, exactly as rsa.SignPSS does:
// rsa.PSSSaltLengthAuto is the longest salt the modulus allows (capped at
// the hash's size in FIPS 140 mode), rsa.PSSSaltLengthEqualsHash the hash's
// size, and a positive value itself. A modulus too small for the hash and
// the salt fails with rsa.ErrMessageTooLong, as in crypto/rsa, and a
// negative salt length; both errors wrap ErrInvalid.
func PSSSaltLength(bits int, h crypto.Hash, saltLength int) (int, error) {
	emLen := (bits - 1 + 7) / 8
	hLen := h.Size()
	switch {
	case saltLength == rsa.PSSSaltLengthAuto:
		saltLength = emLen - 2 - hLen
		if saltLength < 0 {
			return 0, fmt.Errorf("%w: a %d-bit modulus is too small for PSS with %v: %w", ErrInvalid, bits, h, rsa.ErrMessageTooLong)
		}
		if fips140.Enabled() && saltLength > hLen {
			saltLength = hLen
		}
		return saltLength, nil
	case saltLength == rsa.PSSSaltLengthEqualsHash:
		saltLength = hLen
	case saltLength < 0:
		return 0, fmt.Errorf("%w: PSS salt length %d", ErrInvalid, saltLength)
	}
	if emLen < hLen+saltLength+2 {
		return 0, fmt.Errorf("%w: a %d-bit modulus is too small for PSS with %v and a %d-byte salt: %w", ErrInvalid, bits, h, saltLength, rsa.ErrMessageTooLong)
	}
	return saltLength, nil
}

// KeyTypeOf returns the type and size in bits of a public key of the
// standard library's: *ecdsa.PublicKey on P-256, P-384 or P-521,
// *rsa.PublicKey, and ed25519.PublicKey. Any other key, curve or malformed
// key fails with an error wrapping ErrUnsupported or ErrInvalid.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, int, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p == nil || p.Curve == nil {
			return 0, 0, fmt.Errorf("%w: incomplete ECDSA public key", ErrInvalid)
		}
		switch p.Curve {
		case elliptic.P256():
			return KeyECDSAP256, 256, nil
		case elliptic.P384():
			return KeyECDSAP384, 384, nil
		case elliptic.P521():
			return KeyECDSAP521, 521, nil
		}
		return 0, 0, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupported, p.Curve.Params().Name)
	case *rsa.PublicKey:
		if p == nil || p.N == nil || p.N.Sign() <= 0 {
			return 0, 0, fmt.Errorf("%w: incomplete RSA public key", ErrInvalid)
		}
		return KeyRSA, p.N.BitLen(), nil
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return 0, 0, fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrInvalid, len(p))
		}
		return KeyEd25519, 256, nil
	}
	return 0, 0, fmt.Errorf("%w: public key of type %T", ErrUnsupported, pub)
}

// CheckPrivateKey reports a malformed private key of the standard library's
// before an engine reads it: a nil *ecdsa.PrivateKey, one without a curve,
// or whose D is missing or outside [1, N-1]; a nil *rsa.PrivateKey, one
// without a modulus, private exponent or primes, or with a nil prime; an
// ed25519.PrivateKey of the wrong length. The error wraps ErrInvalid. Any
// other value, of whatever type, passes: the engine judges the types it
// takes itself. Every engine's ImportKey calls it first, so a key that
// crypto/ecdsa or crypto/rsa would panic on is refused the same way
// everywhere.
func CheckPrivateKey(priv any) error {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		switch {
		case k == nil || k.Curve == nil:
			return fmt.Errorf("%w: incomplete ECDSA private key: no curve", ErrInvalid)
		case k.D == nil:
			return fmt.Errorf("%w: incomplete ECDSA private key: D is nil", ErrInvalid)
		case k.D.Sign() <= 0 || k.D.Cmp(k.Curve.Params().N) >= 0:
			return fmt.Errorf("%w: ECDSA private key whose D is not in [1, N-1]", ErrInvalid)
		}
	case *rsa.PrivateKey:
		switch {
		case k == nil || k.N == nil:
			return fmt.Errorf("%w: incomplete RSA private key: no modulus", ErrInvalid)
		case k.D == nil:
			return fmt.Errorf("%w: incomplete RSA private key: D is nil", ErrInvalid)
		case len(k.Primes) < 2:
			return fmt.Errorf("%w: incomplete RSA private key: %d primes", ErrInvalid, len(k.Primes))
		case slices.Contains(k.Primes, nil):
			return fmt.Errorf("%w: incomplete RSA private key: a nil prime", ErrInvalid)
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return fmt.Errorf("%w: Ed25519 private key of %d bytes", ErrInvalid, len(k))
		}
	}
	return nil
}
