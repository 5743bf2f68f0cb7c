//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

var _ offload.Importer = (*Engine)(nil)

// ImportKey copies a private key held in memory onto the token with
// C_CreateObject: an *rsa.PrivateKey of 2048 to 4096 bits with two primes,
// an *ecdsa.PrivateKey on P-256, P-384 or P-521, an ed25519.PrivateKey
// (where the token lists CKM_EDDSA), or AES key bytes of 16, 24 or 32 bytes
// (where the token lists an AES mechanism). Anything else, Ed448 and ML-DSA
// among them, fails with offload.ErrUnsupported.
//
// The key material passes through this process's memory (and priv is
// still there afterwards): for a key that must never be in memory, make it
// on the device with GenerateKey instead. The object made is a token object
// (CKA_TOKEN), private, sensitive and not extractable, with a random 16-byte
// CKA_ID and the label "offcrypt-" followed by the id's first 8 bytes in
// hex, as GenerateKey's; it stays on the token after the engine closes,
// until someone destroys it. For ECDSA and Ed25519 keys a public key object
// with the same id and label is made as well, so FindKey can find the
// public half later (RSA private objects carry their modulus).
func (e *Engine) ImportKey(priv any) (*offload.Key, error) {
	if e.closed.Load() {
		return nil, errClosed
	}
	if err := offload.CheckPrivateKey(priv); err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	id, label, common := newObjectName(nil, "", true)
	secret := func(class, kt uint, extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
		return append(append(common(class),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)), extra...)
	}
	public := func(kt uint, extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
		return append(append(common(pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true)), extra...)
	}
	unsupported := func(what, mech string) (*offload.Key, error) {
		return nil, fmt.Errorf("pkcs11: token cannot use imported %s keys (no %s): %w", what, mech, offload.ErrUnsupported)
	}

	var (
		typ   offload.KeyType
		bits  int
		pub   crypto.PublicKey
		class = uint(pkcs11.CKO_PRIVATE_KEY)
		prT   []*pkcs11.Attribute
		pubT  []*pkcs11.Attribute
		alt   []byte // a second CKA_EC_PARAMS to try (Ed25519 by OID)
	)
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if k == nil || k.N == nil || k.D == nil || len(k.Primes) == 0 {
			return nil, fmt.Errorf("pkcs11: incomplete RSA private key: %w", offload.ErrInvalid)
		}
		bits = k.N.BitLen()
		if bits < 2048 || bits > 4096 {
			return nil, fmt.Errorf("pkcs11: RSA keys of %d bits: want 2048 to 4096: %w", bits, offload.ErrUnsupported)
		}
		if len(k.Primes) != 2 {
			return nil, fmt.Errorf("pkcs11: RSA keys with %d primes: %w", len(k.Primes), offload.ErrUnsupported)
		}
		mi, ok := e.mechs[pkcs11.CKM_RSA_PKCS]
		if !ok || (mi.MaxKeySize != 0 && uint(bits) > mi.MaxKeySize) || uint(bits) < mi.MinKeySize {
			return unsupported(fmt.Sprintf("%d-bit RSA", bits), "CKM_RSA_PKCS for the size")
		}
		// Precompute fills Dp, Dq and Qinv on a copy, leaving the caller's
		// key as it was.
		c := *k
		c.Precompute()
		if c.Precomputed.Dp == nil || c.Precomputed.Dq == nil || c.Precomputed.Qinv == nil {
			return nil, fmt.Errorf("pkcs11: RSA key without CRT values: %w", offload.ErrInvalid)
		}
		typ, pub = offload.KeyRSA, &rsa.PublicKey{N: new(big.Int).Set(k.N), E: k.E}
		prT = secret(class, pkcs11.CKK_RSA,
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(k.E)).Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, c.Precomputed.Dp.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, c.Precomputed.Dq.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, c.Precomputed.Qinv.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve == nil {
			return nil, fmt.Errorf("pkcs11: incomplete ECDSA private key: %w", offload.ErrInvalid)
		}
		var err error
		if typ, bits, err = offload.KeyTypeOf(&k.PublicKey); err != nil {
			return nil, fmt.Errorf("pkcs11: ECDSA key: %w", err)
		}
		oid := curveOIDs[typ]
		if !e.hasMech(pkcs11.CKM_ECDSA, ckfSign) {
			return unsupported("ECDSA", "CKM_ECDSA")
		}
		d, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("pkcs11: ECDSA private key: %v: %w", err, offload.ErrInvalid)
		}
		pk := k.PublicKey
		point, err := pk.Bytes()
		if err != nil {
			return nil, fmt.Errorf("pkcs11: ECDSA public key: %v: %w", err, offload.ErrInvalid)
		}
		ecPoint, _ := asn1.Marshal(point)
		params, _ := asn1.Marshal(oid)
		pub = &pk
		prT = secret(class, pkcs11.CKK_EC,
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, d),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true))
		pubT = public(pkcs11.CKK_EC,
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, ecPoint))
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("pkcs11: Ed25519 private key of %d bytes: %w", len(k), offload.ErrInvalid)
		}
		if !e.hasMech(ckmEdDSA, ckfSign) {
			return unsupported("Ed25519", "CKM_EDDSA")
		}
		typ, bits = offload.KeyEd25519, 256
		p := slices.Clone(k[ed25519.SeedSize:])
		pub = ed25519.PublicKey(p)
		params, _ := asn1.MarshalWithParams("edwards25519", "printable")
		alt, _ = asn1.Marshal(oidEd25519)
		ecPoint, _ := asn1.Marshal([]byte(p))
		prT = secret(class, ckkECEdwards,
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, k.Seed()),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params)) // last: replaced by alt on retry
		pubT = public(ckkECEdwards,
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, ecPoint),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
	case []byte:
		n := len(k)
		if n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("pkcs11: AES keys of %d bytes: %w", n, offload.ErrUnsupported)
		}
		ok := false
		for _, m := range []uint{pkcs11.CKM_AES_GCM, pkcs11.CKM_AES_CBC, pkcs11.CKM_AES_CBC_PAD, pkcs11.CKM_AES_CTR, pkcs11.CKM_AES_ECB} {
			ok = ok || e.hasMech(m, pkcs11.CKF_ENCRYPT)
		}
		if !ok {
			return unsupported("AES", "AES mechanism")
		}
		typ, bits, class = offload.KeyAES, 8*n, pkcs11.CKO_SECRET_KEY
		prT = secret(class, pkcs11.CKK_AES,
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, slices.Clone(k)),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
	default:
		return nil, fmt.Errorf("pkcs11: cannot import %T keys: %w", priv, offload.ErrUnsupported)
	}

	f := submitOnce(e, context.Background(), offload.OpSign, false, offload.Call{}, func(w *worker) (*offload.Key, error) {
		withAlt := func(t []*pkcs11.Attribute) []*pkcs11.Attribute {
			return append(slices.Clone(t[:len(t)-1]), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, alt))
		}
		obj, err := w.p.CreateObject(w.sh, prT)
		if code, _ := ckCode(err); alt != nil && badCurveParams(code) {
			// Some tokens name the curve by OID rather than by name.
			prT, pubT = withAlt(prT), withAlt(pubT)
			obj, err = w.p.CreateObject(w.sh, prT)
		}
		if err != nil {
			return nil, fmt.Errorf("pkcs11: importing an %v key: %w", typ, ckErr("C_CreateObject", err))
		}
		if pubT != nil {
			// The public object only helps a later FindKey; the key works
			// without it, so a token that refuses it does not fail the import.
			w.p.CreateObject(w.sh, pubT)
		}
		h := e.newHandle(obj, class, id, label)
		return offload.NewKey(e, typ, bits, pub, h), nil
	})
	return f.Wait(context.Background())
}
