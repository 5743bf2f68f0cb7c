//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/offcrypt/offcrypt/internal/ecdsaenc"
	"github.com/offcrypt/offcrypt/internal/rsapad"
	"github.com/offcrypt/offcrypt/offload"
)

// hashMechs maps a hash to its PKCS #11 digest mechanism and MGF1 variant.
var hashMechs = map[crypto.Hash][2]uint{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// combined maps a hash to the hash-and-sign mechanisms that take the whole
// message: ECDSA, RSA PKCS #1 v1.5 and RSA-PSS.
var combined = map[crypto.Hash][3]uint{
	crypto.SHA1:   {pkcs11.CKM_ECDSA_SHA1, pkcs11.CKM_SHA1_RSA_PKCS, pkcs11.CKM_SHA1_RSA_PKCS_PSS},
	crypto.SHA224: {pkcs11.CKM_ECDSA_SHA224, pkcs11.CKM_SHA224_RSA_PKCS, pkcs11.CKM_SHA224_RSA_PKCS_PSS},
	crypto.SHA256: {pkcs11.CKM_ECDSA_SHA256, pkcs11.CKM_SHA256_RSA_PKCS, pkcs11.CKM_SHA256_RSA_PKCS_PSS},
	crypto.SHA384: {pkcs11.CKM_ECDSA_SHA384, pkcs11.CKM_SHA384_RSA_PKCS, pkcs11.CKM_SHA384_RSA_PKCS_PSS},
	crypto.SHA512: {pkcs11.CKM_ECDSA_SHA512, pkcs11.CKM_SHA512_RSA_PKCS, pkcs11.CKM_SHA512_RSA_PKCS_PSS},
}

// prepare runs the checks every keyed request passes before it reaches a
// worker, given the request's own validation (alg, err): the key is one of
// this engine's, the token supports the algorithm, and the engine is open.
func (e *Engine) prepare(alg offload.Algorithm, err error, key *offload.Key) (*keyHandle, error) {
	if err != nil {
		return nil, err
	}
	h, err := e.handleOf(key)
	if err != nil {
		return nil, err
	}
	if !e.info.Supports(alg) {
		return nil, fmt.Errorf("pkcs11: %v: %w", alg, offload.ErrUnsupported)
	}
	if e.closed.Load() {
		return nil, errClosed
	}
	return h, nil
}

// Sign signs on the token. A Message request (crypto.MessageSigner) goes
// whole to the token when it lists the combined mechanism for the key and
// hash (CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, ...);
// otherwise it is hashed here and signed as a digest. ECDSA uses CKM_ECDSA
// over the digest cut to the curve's order as crypto/ecdsa cuts it, and
// returns ASN.1; RSA uses CKM_RSA_PKCS with the DigestInfo built here, or
// CKM_RSA_PKCS_PSS with the options' hash, MGF1 with the same hash and the
// salt length offload resolved for the modulus; Ed25519 uses CKM_EDDSA
// (pure Ed25519 only: Ed25519ph and Ed25519ctx fail with
// offload.ErrUnsupported). An algorithm the token does not list fails
// before any session is used.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	const op = offload.OpSign
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("pkcs11: nil request: %w", offload.ErrInvalid))
	}
	p, err := req.Check()
	h, err := e.prepare(p.Alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	in := req.Input()
	if len(in) > e.cfg.MaxInline {
		return failed[[]byte](op, fmt.Errorf("pkcs11: %d bytes to sign, more than MaxInline %d: %w", len(in), e.cfg.MaxInline, offload.ErrInvalid))
	}
	hf := p.Hash
	// A Message request goes whole to the token when it has the combined
	// hash-and-sign mechanism for the key type and hash; otherwise it is
	// hashed here.
	onToken := func(kind int) (uint, bool) {
		if req.Message == nil || hf == 0 {
			return 0, false
		}
		m, ok := combined[hf]
		return m[kind], ok && e.hasMech(m[kind], ckfSign)
	}
	digest := func() []byte {
		if req.Message != nil && hf != 0 {
			hh := hf.New()
			hh.Write(req.Message)
			return hh.Sum(nil)
		}
		return bytes.Clone(in)
	}

	var (
		mech *pkcs11.Mechanism
		data []byte
		post func([]byte) ([]byte, error)
	)
	switch p.Alg {
	case offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521:
		pub, ok := req.Key.Public().(*ecdsa.PublicKey)
		if !ok {
			return failed[[]byte](op, fmt.Errorf("pkcs11: %w: %v key with a %T public key", offload.ErrInvalid, req.Key.Type(), req.Key.Public()))
		}
		curve := pub.Curve
		post = func(rs []byte) ([]byte, error) {
			sig, err := ecdsaenc.DER(curve, rs)
			if err != nil {
				return nil, fmt.Errorf("pkcs11: CKM_ECDSA returned %d bytes: %w", len(rs), err)
			}
			return sig, nil
		}
		mech, data = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), ecdsaenc.Truncate(curve, digest())
		if m, ok := onToken(0); ok {
			mech, data = pkcs11.NewMechanism(m, nil), bytes.Clone(req.Message)
		}
	case offload.RSAPKCS1v15:
		if m, ok := onToken(1); ok {
			mech, data = pkcs11.NewMechanism(m, nil), bytes.Clone(req.Message)
			break
		}
		data, err = rsapad.DigestInfo((req.Key.Bits()+7)/8, hf, digest())
		if err != nil {
			return failed[[]byte](op, err)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	case offload.RSAPSS:
		hm, ok := hashMechs[hf]
		if !ok {
			return failed[[]byte](op, fmt.Errorf("pkcs11: PSS with %v: %w", hf, offload.ErrUnsupported))
		}
		params := pkcs11.NewPSSParams(hm[0], hm[1], uint(p.SaltLength))
		mech, data = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params), digest()
		if m, ok := onToken(2); ok {
			mech, data = pkcs11.NewMechanism(m, params), bytes.Clone(req.Message)
		}
	case offload.Ed25519:
		mech, data = pkcs11.NewMechanism(ckmEdDSA, nil), bytes.Clone(in)
	default:
		return failed[[]byte](op, fmt.Errorf("pkcs11: %v: %w", p.Alg, offload.ErrUnsupported))
	}
	return submit(e, ctx, op, true, req.Call, func(w *worker) ([]byte, error) {
		obj, err := e.object(w, h)
		if err != nil {
			return nil, err
		}
		if err := w.p.SignInit(w.sh, []*pkcs11.Mechanism{mech}, obj); err != nil {
			return nil, ckErr("C_SignInit", err)
		}
		sig, err := w.p.Sign(w.sh, data)
		if err != nil {
			return nil, ckErr("C_Sign", err)
		}
		if post != nil {
			return post(sig)
		}
		return sig, nil
	})
}

// paddingFailure reports whether a C_Decrypt error says the ciphertext was
// bad, as opposed to a session, login or device failure.
func paddingFailure(err error) bool {
	code, ok := ckCode(err)
	if !ok {
		return false
	}
	switch code {
	case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		pkcs11.CKR_DATA_INVALID, pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_GENERAL_ERROR:
		return true
	}
	return false
}

// Decrypt decrypts on the token. Where the token has raw RSA
// (CKM_RSA_X_509) and lets the key use it, the padding is removed here, in
// constant time: OAEP with the options' hash, MGF1 hash and label, so the
// result is exactly crypto/rsa's whatever the token's own OAEP accepts
// (SoftHSM 2.6 takes only SHA-1 and ignores the label, so a wrong label
// would decrypt), and PKCS #1 v1.5, so that neither the token's answer nor
// its timing says whether the padding was right. Every padding failure is
// rsa.ErrDecryption. With rsa.PKCS1v15DecryptOptions.SessionKeyLen set it
// behaves as crypto/rsa: a ciphertext that does not decrypt to a key of
// that length yields random bytes of that length and no error. Where raw
// RSA is missing or refused, the token's CKM_RSA_PKCS_OAEP (hash, MGF1 and
// the label as source data) or CKM_RSA_PKCS does the padding, and a
// session key then hides a failure from the caller's peer, but not from
// the timing of the token.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	const op = offload.OpDecrypt
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("pkcs11: nil request: %w", offload.ErrInvalid))
	}
	p, err := req.Check()
	h, err := e.prepare(p.Alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	var (
		k          = (req.Key.Bits() + 7) / 8
		raw        *pkcs11.Mechanism // CKM_RSA_X_509, when the token has it
		padded     *pkcs11.Mechanism // the token's own padding: the fallback, or the only way
		unpad      func(em []byte) ([]byte, error)
		sessionKey []byte
	)
	if e.hasMech(pkcs11.CKM_RSA_X_509, ckfDecrypt) {
		raw = pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)
	}
	switch p.Alg {
	case offload.RSAOAEP:
		hm, ok := hashMechs[p.Hash]
		mm, ok2 := hashMechs[p.MGFHash]
		if ok && ok2 && e.hasMech(pkcs11.CKM_RSA_PKCS_OAEP, ckfDecrypt) {
			padded = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
				pkcs11.NewOAEPParams(hm[0], mm[1], pkcs11.CKZ_DATA_SPECIFIED, bytes.Clone(p.Label)))
		}
		if raw == nil && padded == nil {
			return failed[[]byte](op, fmt.Errorf("pkcs11: OAEP with %v / MGF1 %v: %w", p.Hash, p.MGFHash, offload.ErrUnsupported))
		}
		hash, mgf, label := p.Hash, p.MGFHash, bytes.Clone(p.Label)
		unpad = func(em []byte) ([]byte, error) { return rsapad.DecodeOAEP(em, hash, mgf, label) }
	case offload.RSAPKCS1v15Decrypt:
		padded = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
		unpad = rsapad.DecodePKCS1v15
		if p.SessionKeyLen > 0 {
			sessionKey = make([]byte, p.SessionKeyLen)
			if _, err := rand.Read(sessionKey); err != nil {
				return failed[[]byte](op, err)
			}
			unpad = func(em []byte) ([]byte, error) { return sessionKey, rsapad.DecodeSessionKey(em, sessionKey) }
		}
	}
	ct := bytes.Clone(req.Ciphertext)
	return submitSecret(e, ctx, op, req.Call, func(w *worker) ([]byte, error) {
		obj, err := e.object(w, h)
		if err != nil {
			return nil, err
		}
		mech := padded
		if raw != nil {
			mech = raw
			err = w.p.DecryptInit(w.sh, []*pkcs11.Mechanism{raw}, obj)
			if err != nil && padded != nil && rawRefused(err) {
				// The key may not be used raw: let the token pad.
				mech = padded
				err = w.p.DecryptInit(w.sh, []*pkcs11.Mechanism{padded}, obj)
			}
		} else {
			err = w.p.DecryptInit(w.sh, []*pkcs11.Mechanism{padded}, obj)
		}
		if err != nil {
			err = ckErr("C_DecryptInit", err)
			if code, _ := ckCode(err); code == pkcs11.CKR_ARGUMENTS_BAD || code == pkcs11.CKR_MECHANISM_PARAM_INVALID {
				err = fmt.Errorf("%w: the token refuses these parameters: %w", err, offload.ErrUnsupported)
			}
			return nil, err
		}
		pt, err := w.p.Decrypt(w.sh, ct)
		if mech == raw {
			if err != nil {
				return nil, ckDecryptErr("C_Decrypt", err)
			}
			if len(pt) > k {
				clear(pt)
				return nil, fmt.Errorf("pkcs11: CKM_RSA_X_509 returned %d bytes for a %d-byte modulus", len(pt), k)
			}
			em := make([]byte, k)
			copy(em[k-len(pt):], pt)
			clear(pt)
			msg, err := unpad(em)
			clear(em)
			return msg, err
		}
		if sessionKey != nil {
			switch {
			case err == nil && len(pt) == len(sessionKey):
				copy(sessionKey, pt)
			case err == nil || paddingFailure(err):
				// Keep the random key, as crypto/rsa does.
			default:
				return nil, ckDecryptErr("C_Decrypt", err)
			}
			clear(pt)
			return sessionKey, nil
		}
		if err != nil {
			err = ckDecryptErr("C_Decrypt", err)
			if paddingFailure(err) && !errors.Is(err, rsa.ErrDecryption) {
				err = fmt.Errorf("%w: %w", rsa.ErrDecryption, err)
			}
			return nil, err
		}
		return pt, nil
	})
}

// rawRefused reports whether C_DecryptInit refused CKM_RSA_X_509 for the key
// or the token, rather than failing for another reason.
func rawRefused(err error) bool {
	code, _ := ckCode(err)
	switch code {
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11.CKR_KEY_TYPE_INCONSISTENT:
		return true
	}
	return false
}
