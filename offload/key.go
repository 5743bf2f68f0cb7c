package offload

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"math/big"
	"strings"
)

// KeyType names the kind of a key.
type KeyType uint8

// Key types.
const (
	KeyECDSAP256 KeyType = iota + 1
	KeyECDSAP384
	KeyECDSAP521
	KeyRSA
	KeyEd25519
	KeyEd448
	KeyMLDSA44
	KeyMLDSA65
	KeyMLDSA87
	KeyAES
)

var keyTypeNames = map[KeyType]string{
	KeyECDSAP256: "ECDSA-P256", KeyECDSAP384: "ECDSA-P384", KeyECDSAP521: "ECDSA-P521",
	KeyRSA: "RSA", KeyEd25519: "Ed25519", KeyEd448: "Ed448",
	KeyMLDSA44: "ML-DSA-44", KeyMLDSA65: "ML-DSA-65", KeyMLDSA87: "ML-DSA-87", KeyAES: "AES",
}

func (t KeyType) String() string {
	if s, ok := keyTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("keytype(%d)", uint8(t))
}

// Algorithm names one thing an engine can do. Info.Algorithms lists them.
type Algorithm uint8

// Algorithms.
const (
	ECDSAP256 Algorithm = iota + 1 // ECDSA sign on P-256, ASN.1 output
	ECDSAP384
	ECDSAP521
	RSAPKCS1v15        // RSA PKCS #1 v1.5 signature
	RSAPSS             // RSA-PSS signature, every rsa.PSSOptions salt mode
	RSAOAEP            // RSA-OAEP decryption
	RSAPKCS1v15Decrypt // RSA PKCS #1 v1.5 decryption
	Ed25519            // pure Ed25519
	Ed25519ph          // Ed25519ph (pre-hashed with SHA-512)
	Ed25519ctx         // Ed25519 with a context string
	Ed448
	MLDSA44
	MLDSA65
	MLDSA87
	SHA224
	SHA256
	SHA384
	SHA512
	AESGCM
	AESCBC
	AESCTR
	Random
	numAlgorithms
)

var algNames = [...]string{"", "ECDSA-P256", "ECDSA-P384", "ECDSA-P521", "RSA-PKCS1v15", "RSA-PSS",
	"RSA-OAEP", "RSA-PKCS1v15-decrypt", "Ed25519", "Ed25519ph", "Ed25519ctx", "Ed448",
	"ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "SHA-224", "SHA-256", "SHA-384", "SHA-512",
	"AES-GCM", "AES-CBC", "AES-CTR", "random"}

func (a Algorithm) String() string {
	if a > 0 && a < numAlgorithms {
		return algNames[a]
	}
	return fmt.Sprintf("algorithm(%d)", uint8(a))
}

// Op returns the kind of operation a belongs to.
func (a Algorithm) Op() Op {
	switch {
	case a == RSAOAEP || a == RSAPKCS1v15Decrypt:
		return OpDecrypt
	case a >= SHA224 && a <= SHA512:
		return OpHash
	case a >= AESGCM && a <= AESCTR:
		return OpCipher
	case a == Random:
		return OpRandom
	}
	return OpSign
}

// HashAlgorithm maps a SHA-2 crypto.Hash to its Algorithm.
func HashAlgorithm(h crypto.Hash) (Algorithm, bool) {
	switch h {
	case crypto.SHA224:
		return SHA224, true
	case crypto.SHA256:
		return SHA256, true
	case crypto.SHA384:
		return SHA384, true
	case crypto.SHA512:
		return SHA512, true
	}
	return 0, false
}

// A Key is a handle on a key that an engine holds. It carries the public
// half, the key's type and the engine that owns it, so adapters can use it
// without knowing the engine. The private half never leaves the engine
// through a Key.
//
// Keys are made by engines (ImportKey, GenerateKey, or an engine's own
// lookup); a Key is safe for concurrent use.
type Key struct {
	engine Engine
	typ    KeyType
	bits   int
	pub    crypto.PublicKey
	handle any
}

// NewKey is for engine authors: it wraps the engine's own handle on a key
// (anything; only the engine looks at it) with the key's public half, type
// and size in bits. pub is nil for secret keys. A handle with a method
// Name() string names the key (see Key.Name): a label, a URI, a persistent
// handle, never key material.
func NewKey(e Engine, t KeyType, bits int, pub crypto.PublicKey, handle any) *Key {
	return &Key{engine: e, typ: t, bits: bits, pub: pub, handle: handle}
}

// Engine returns the engine that holds the key.
func (k *Key) Engine() Engine { return k.engine }

// Type returns the key's type.
func (k *Key) Type() KeyType { return k.typ }

// Bits returns the key's size in bits: the modulus for RSA, the field for
// ECDSA, the key for AES.
func (k *Key) Bits() int { return k.bits }

// Public returns the public key, as the standard library (or circl) types
// it: *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey, and so on. It is
// nil for secret keys.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Handle returns the engine's own handle on the key. Only the engine that
// made the key should use it.
func (k *Key) Handle() any { return k.handle }

// String describes the key for a person: the engine, the type and size,
// and the engine's name for the key when it has one (Key.Name), as in
// `pkcs11 ECDSA-P256 key "pkcs11:token=web;…;object=tls-key;id=%01;type=private"`.
// It never shows key material.
func (k *Key) String() string {
	if k == nil {
		return "<nil offload.Key>"
	}
	var b strings.Builder
	if k.engine != nil {
		b.WriteString(k.engine.Info().Name)
		b.WriteByte(' ')
	}
	b.WriteString(k.typ.String())
	switch k.typ {
	case KeyRSA, KeyAES:
		fmt.Fprintf(&b, "-%d", k.bits)
	}
	b.WriteString(" key")
	if name := k.Name(); name != "" {
		fmt.Fprintf(&b, " %q", name)
	}
	return b.String()
}

// errNilRequest is every request Check's answer to a nil request.
var errNilRequest = fmt.Errorf("%w: nil request", ErrInvalid)

// Check validates a sign request the way every engine must before it goes
// near a device, and resolves what the request's options ask for (see
// SignParams). Engines call it, check the algorithm against their Info,
// and then use the parameters instead of reading Opts. Errors wrap
// ErrInvalid.
func (r *SignRequest) Check() (SignParams, error) {
	if r == nil {
		return SignParams{}, errNilRequest
	}
	if r.Key == nil {
		return SignParams{}, fmt.Errorf("%w: nil key", ErrInvalid)
	}
	if r.Digest != nil && r.Message != nil {
		return SignParams{}, fmt.Errorf("%w: both Digest and Message are set", ErrInvalid)
	}
	h := r.hashFunc()
	if h != 0 && !h.Available() {
		return SignParams{}, fmt.Errorf("%w: hash %v is not available", ErrInvalid, h)
	}
	if h != 0 && r.Message == nil && len(r.Digest) != h.Size() {
		return SignParams{}, fmt.Errorf("%w: digest is %d bytes, %v needs %d", ErrInvalid, len(r.Digest), h, h.Size())
	}
	p := SignParams{Hash: h}
	pssOpts, pss := r.Opts.(*rsa.PSSOptions)
	edOpts, ed := r.Opts.(*ed25519.Options)
	if pss && r.Key.typ != KeyRSA {
		return SignParams{}, fmt.Errorf("%w: PSS options for an %v key", ErrInvalid, r.Key.typ)
	}
	if ed && r.Key.typ != KeyEd25519 {
		return SignParams{}, fmt.Errorf("%w: Ed25519 options for an %v key", ErrInvalid, r.Key.typ)
	}
	var err error
	switch r.Key.typ {
	case KeyECDSAP256, KeyECDSAP384, KeyECDSAP521:
		if h == 0 {
			return SignParams{}, fmt.Errorf("%w: ECDSA needs a hash function", ErrInvalid)
		}
		p.Alg = ECDSAP256 + Algorithm(r.Key.typ-KeyECDSAP256)
	case KeyRSA:
		p.Alg = RSAPKCS1v15
		if pss {
			if h == 0 {
				return SignParams{}, fmt.Errorf("%w: RSA-PSS needs a hash function", ErrInvalid)
			}
			p.Alg = RSAPSS
			if p.SaltLength, err = PSSSaltLength(r.Key.bits, h, pssOpts.SaltLength); err != nil {
				return SignParams{}, err
			}
		}
	case KeyEd25519:
		switch {
		case h == crypto.SHA512:
			p.Alg = Ed25519ph
		case h != 0:
			return SignParams{}, fmt.Errorf("%w: Ed25519 takes no hash, or SHA-512 for Ed25519ph; got %v", ErrInvalid, h)
		case ed && edOpts.Context != "":
			p.Alg = Ed25519ctx
		default:
			p.Alg = Ed25519
		}
		if ed && edOpts.Context != "" {
			p.Context = []byte(edOpts.Context)
		}
	case KeyEd448:
		p.Alg = Ed448
	case KeyMLDSA44, KeyMLDSA65, KeyMLDSA87:
		if h != 0 {
			return SignParams{}, fmt.Errorf("%w: ML-DSA signs the message, not a %v digest", ErrInvalid, h)
		}
		p.Alg = MLDSA44 + Algorithm(r.Key.typ-KeyMLDSA44)
		if o, ok := r.Opts.(*MLDSAOptions); ok && o != nil {
			p.Context, p.Deterministic = o.Context, o.Deterministic
		}
	default:
		return SignParams{}, fmt.Errorf("%w: an %v key cannot sign", ErrInvalid, r.Key.typ)
	}
	if len(p.Context) > 255 {
		return SignParams{}, fmt.Errorf("%w: %v context of %d bytes, at most 255", ErrInvalid, p.Alg, len(p.Context))
	}
	return p, nil
}

func (r *SignRequest) hashFunc() crypto.Hash {
	if r.Opts == nil {
		return 0
	}
	return r.Opts.HashFunc()
}

// Input returns what the request signs: Digest or Message.
func (r *SignRequest) Input() []byte {
	if r.Message != nil {
		return r.Message
	}
	return r.Digest
}

// Check validates a decrypt request and resolves what its options ask for
// (see DecryptParams). A ciphertext longer than the modulus or not below
// it, and a session key that cannot fit in the modulus, fail with
// rsa.ErrDecryption, as in crypto/rsa.
// Errors wrap ErrInvalid.
func (r *DecryptRequest) Check() (DecryptParams, error) {
	if r == nil {
		return DecryptParams{}, errNilRequest
	}
	if r.Key == nil {
		return DecryptParams{}, fmt.Errorf("%w: nil key", ErrInvalid)
	}
	if r.Key.typ != KeyRSA {
		return DecryptParams{}, fmt.Errorf("%w: an %v key cannot decrypt", ErrInvalid, r.Key.typ)
	}
	if len(r.Ciphertext) == 0 {
		return DecryptParams{}, fmt.Errorf("%w: empty ciphertext", ErrInvalid)
	}
	k := (r.Key.bits + 7) / 8
	if len(r.Ciphertext) > k {
		return DecryptParams{}, fmt.Errorf("%w: %d-byte ciphertext for a %d-byte modulus: %w", ErrInvalid, len(r.Ciphertext), k, rsa.ErrDecryption)
	}
	if pub, ok := r.Key.pub.(*rsa.PublicKey); ok && pub.N != nil && new(big.Int).SetBytes(r.Ciphertext).Cmp(pub.N) >= 0 {
		return DecryptParams{}, fmt.Errorf("%w: ciphertext not below the modulus: %w", ErrInvalid, rsa.ErrDecryption)
	}
	switch o := r.Opts.(type) {
	case nil:
		return DecryptParams{Alg: RSAPKCS1v15Decrypt}, nil
	case *rsa.PKCS1v15DecryptOptions:
		p := DecryptParams{Alg: RSAPKCS1v15Decrypt}
		if o != nil && o.SessionKeyLen > 0 {
			p.SessionKeyLen = o.SessionKeyLen
			if k-(p.SessionKeyLen+11) < 0 {
				return DecryptParams{}, fmt.Errorf("%w: a %d-byte session key cannot fit a %d-byte modulus: %w", ErrInvalid, p.SessionKeyLen, k, rsa.ErrDecryption)
			}
		}
		return p, nil
	case *rsa.OAEPOptions:
		if o == nil {
			break
		}
		p := DecryptParams{Alg: RSAOAEP, Hash: o.Hash, MGFHash: o.MGFHash, Label: o.Label}
		if p.MGFHash == 0 {
			p.MGFHash = p.Hash
		}
		if !p.Hash.Available() || !p.MGFHash.Available() {
			return DecryptParams{}, fmt.Errorf("%w: OAEP hash %v / MGF hash %v not available", ErrInvalid, o.Hash, o.MGFHash)
		}
		return p, nil
	}
	return DecryptParams{}, fmt.Errorf("%w: decrypter options of type %T", ErrInvalid, r.Opts)
}

// Check validates a hash request and returns the algorithm it asks for.
func (r *HashRequest) Check() (Algorithm, error) {
	if r == nil {
		return 0, errNilRequest
	}
	a, ok := HashAlgorithm(r.Hash)
	if !ok {
		return 0, fmt.Errorf("%w: hash %v", ErrUnsupported, r.Hash)
	}
	return a, nil
}

// Check validates a cipher request's shape (not its key length or IV size,
// which the engine checks) and returns the algorithm it asks for.
func (r *CipherRequest) Check() (Algorithm, error) {
	if r == nil {
		return 0, errNilRequest
	}
	if r.Key == nil {
		return 0, fmt.Errorf("%w: nil key", ErrInvalid)
	}
	if r.Key.typ != KeyAES {
		return 0, fmt.Errorf("%w: an %v key is not a cipher key", ErrInvalid, r.Key.typ)
	}
	switch r.Mode {
	case ModeGCM:
		return AESGCM, nil
	case ModeCBC:
		return AESCBC, nil
	case ModeCTR:
		return AESCTR, nil
	}
	return 0, fmt.Errorf("%w: cipher mode %v", ErrUnsupported, r.Mode)
}

// MLDSAOptions are signer options for ML-DSA keys: the FIPS 204 context
// string and the choice between hedged and deterministic signing. Nil
// options, or any options whose HashFunc is zero, sign hedged with an empty
// context.
type MLDSAOptions struct {
	Context       []byte // at most 255 bytes
	Deterministic bool   // sign without fresh randomness; hedged is the default
}

// HashFunc returns zero: ML-DSA signs the message itself.
func (*MLDSAOptions) HashFunc() crypto.Hash { return 0 }
