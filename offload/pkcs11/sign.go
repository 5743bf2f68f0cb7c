//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
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

// hashOIDs are the DigestInfo algorithm identifiers of PKCS #1 v1.5
// signatures (RFC 8017, section 9.2).
var hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.MD5:        {1, 2, 840, 113549, 2, 5},
	crypto.SHA1:       {1, 3, 14, 3, 2, 26},
	crypto.SHA224:     {2, 16, 840, 1, 101, 3, 4, 2, 4},
	crypto.SHA256:     {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384:     {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512:     {2, 16, 840, 1, 101, 3, 4, 2, 3},
	crypto.SHA512_224: {2, 16, 840, 1, 101, 3, 4, 2, 5},
	crypto.SHA512_256: {2, 16, 840, 1, 101, 3, 4, 2, 6},
	crypto.SHA3_224:   {2, 16, 840, 1, 101, 3, 4, 2, 7},
	crypto.SHA3_256:   {2, 16, 840, 1, 101, 3, 4, 2, 8},
	crypto.SHA3_384:   {2, 16, 840, 1, 101, 3, 4, 2, 9},
	crypto.SHA3_512:   {2, 16, 840, 1, 101, 3, 4, 2, 10},
}

// digestInfo returns DigestInfo(h, digest), the input of a PKCS #1 v1.5
// signature: the DER of SEQUENCE { SEQUENCE { oid, NULL }, OCTET STRING }.
// Hash 0 signs the input as it is, and MD5SHA1 (TLS 1.0) has no prefix, as in
// the standard library.
func digestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	if h == 0 || h == crypto.MD5SHA1 {
		return bytes.Clone(digest), nil
	}
	oid, ok := hashOIDs[h]
	if !ok {
		return nil, fmt.Errorf("pkcs11: PKCS #1 v1.5 with %v: %w", h, offload.ErrUnsupported)
	}
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	type info struct {
		Alg    algID
		Digest []byte
	}
	return asn1.Marshal(info{algID{oid, asn1.NullRawValue}, digest})
}

// ecdsaDER turns CKM_ECDSA's raw r‖s into the ASN.1 form crypto/ecdsa uses,
// SEQUENCE { INTEGER r, INTEGER s }, with minimal integers.
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 || len(raw) > 2*66 {
		return nil, fmt.Errorf("pkcs11: CKM_ECDSA returned %d bytes", len(raw))
	}
	n := len(raw) / 2
	r, s := bytes.TrimLeft(raw[:n], "\x00"), bytes.TrimLeft(raw[n:], "\x00")
	if len(r) == 0 || len(s) == 0 {
		return nil, fmt.Errorf("pkcs11: CKM_ECDSA returned a zero r or s")
	}
	intLen := func(v []byte) int { return len(v) + int(v[0]>>7) } // a leading 0x00 keeps it positive
	body := 2 + intLen(r) + 2 + intLen(s)                         // each INTEGER is at most 67 bytes
	out := make([]byte, 0, 3+body)
	out = append(out, 0x30) // SEQUENCE
	if body >= 0x80 {
		out = append(out, 0x81)
	}
	out = append(out, byte(body))
	for _, v := range [][]byte{r, s} {
		out = append(out, 0x02, byte(intLen(v)))
		if v[0]&0x80 != 0 {
			out = append(out, 0)
		}
		out = append(out, v...)
	}
	return out, nil
}

// pssSaltLength resolves rsa.PSSOptions.SaltLength as rsa.SignPSS does.
func pssSaltLength(opts *rsa.PSSOptions, bits int, h crypto.Hash) (int, error) {
	switch s := opts.SaltLength; {
	case s == rsa.PSSSaltLengthAuto:
		n := (bits-1+7)/8 - 2 - h.Size()
		if n < 0 {
			return 0, fmt.Errorf("pkcs11: %d-bit key too short for PSS with %v: %w", bits, h, offload.ErrInvalid)
		}
		return n, nil
	case s == rsa.PSSSaltLengthEqualsHash:
		return h.Size(), nil
	case s < 0:
		return 0, fmt.Errorf("pkcs11: PSS salt length %d: %w", s, offload.ErrInvalid)
	case (bits-1+7)/8 < h.Size()+s+2:
		return 0, fmt.Errorf("pkcs11: PSS salt of %d bytes too long for a %d-bit key: %w", s, bits, offload.ErrInvalid)
	default:
		return s, nil
	}
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
// over the digest and returns ASN.1; RSA uses CKM_RSA_PKCS
// with the DigestInfo built here, or CKM_RSA_PKCS_PSS with the options' hash,
// MGF1 with the same hash and the salt length resolved as crypto/rsa does;
// Ed25519 uses CKM_EDDSA (pure Ed25519 only: Ed25519ph and Ed25519ctx fail
// with offload.ErrUnsupported). An algorithm the token does not list fails
// before any session is used.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	const op = offload.OpSign
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("pkcs11: nil request: %w", offload.ErrInvalid))
	}
	alg, err := req.Check()
	h, err := e.prepare(alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	in := req.Input()
	if len(in) > e.cfg.MaxInline {
		return failed[[]byte](op, fmt.Errorf("pkcs11: %d bytes to sign, more than MaxInline %d: %w", len(in), e.cfg.MaxInline, offload.ErrInvalid))
	}
	var hf crypto.Hash
	if req.Opts != nil {
		hf = req.Opts.HashFunc()
	}
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
	switch alg {
	case offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521:
		mech, data, post = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest(), ecdsaDER
		if m, ok := onToken(0); ok {
			mech, data = pkcs11.NewMechanism(m, nil), bytes.Clone(req.Message)
		}
	case offload.RSAPKCS1v15:
		if m, ok := onToken(1); ok {
			mech, data = pkcs11.NewMechanism(m, nil), bytes.Clone(req.Message)
			break
		}
		data, err = digestInfo(hf, digest())
		if err != nil {
			return failed[[]byte](op, err)
		}
		if k := (req.Key.Bits() + 7) / 8; len(data) > k-11 {
			return failed[[]byte](op, fmt.Errorf("pkcs11: %w: %w", rsa.ErrMessageTooLong, offload.ErrInvalid))
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	case offload.RSAPSS:
		hm, ok := hashMechs[hf]
		if !ok {
			return failed[[]byte](op, fmt.Errorf("pkcs11: PSS with %v: %w", hf, offload.ErrUnsupported))
		}
		salt, err := pssSaltLength(req.Opts.(*rsa.PSSOptions), req.Key.Bits(), hf)
		if err != nil {
			return failed[[]byte](op, err)
		}
		params := pkcs11.NewPSSParams(hm[0], hm[1], uint(salt))
		mech, data = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params), digest()
		if m, ok := onToken(2); ok {
			mech, data = pkcs11.NewMechanism(m, params), bytes.Clone(req.Message)
		}
	case offload.Ed25519:
		mech, data = pkcs11.NewMechanism(ckmEdDSA, nil), bytes.Clone(in)
	default:
		return failed[[]byte](op, fmt.Errorf("pkcs11: %v: %w", alg, offload.ErrUnsupported))
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

// Decrypt decrypts on the token. RSA-OAEP uses the token's raw RSA
// (CKM_RSA_X_509) and removes the OAEP padding here, in constant time, with
// the options' hash, MGF1 hash and label, so the result is exactly crypto/rsa's
// whatever the token's own OAEP accepts (SoftHSM 2.6 takes only SHA-1 and
// ignores the label, so a wrong label would decrypt). When the token has no
// CKM_RSA_X_509, or the key may not be used raw, CKM_RSA_PKCS_OAEP is used
// with the hash, MGF1 and the label as the source data. PKCS #1 v1.5 uses
// CKM_RSA_PKCS. With rsa.PKCS1v15DecryptOptions.SessionKeyLen set it behaves
// as crypto/rsa: a ciphertext that does not decrypt to a key of that length
// yields random bytes of that length and no error. (The token's answer,
// success or failure, still reaches this process, so this hides the failure
// from the caller's peer, not from the timing of the token.)
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	const op = offload.OpDecrypt
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("pkcs11: nil request: %w", offload.ErrInvalid))
	}
	alg, err := req.Check()
	h, err := e.prepare(alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	k := (req.Key.Bits() + 7) / 8
	if len(req.Ciphertext) > k {
		return failed[[]byte](op, fmt.Errorf("pkcs11: ciphertext longer than the modulus: %w: %w", rsa.ErrDecryption, offload.ErrInvalid))
	}
	var (
		mech       *pkcs11.Mechanism
		sessionKey []byte
		oaep       *rsa.OAEPOptions
		tokenOAEP  *pkcs11.Mechanism // the token's CKM_RSA_PKCS_OAEP, when it can take the options
	)
	switch o := req.Opts.(type) {
	case *rsa.OAEPOptions:
		mgf := o.MGFHash
		if mgf == 0 {
			mgf = o.Hash
		}
		hm, ok := hashMechs[o.Hash]
		mm, ok2 := hashMechs[mgf]
		if ok && ok2 && e.hasMech(pkcs11.CKM_RSA_PKCS_OAEP, ckfDecrypt) {
			tokenOAEP = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
				pkcs11.NewOAEPParams(hm[0], mm[1], pkcs11.CKZ_DATA_SPECIFIED, bytes.Clone(o.Label)))
		}
		if e.hasMech(pkcs11.CKM_RSA_X_509, ckfDecrypt) {
			oaep = &rsa.OAEPOptions{Hash: o.Hash, MGFHash: mgf, Label: bytes.Clone(o.Label)}
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)
		} else if tokenOAEP != nil {
			mech, tokenOAEP = tokenOAEP, nil
		} else {
			return failed[[]byte](op, fmt.Errorf("pkcs11: OAEP with %v / MGF1 %v: %w", o.Hash, mgf, offload.ErrUnsupported))
		}
	case *rsa.PKCS1v15DecryptOptions:
		if l := o.SessionKeyLen; l > 0 {
			if k-(l+11) < 0 {
				return failed[[]byte](op, fmt.Errorf("pkcs11: session key of %d bytes: %w: %w", l, rsa.ErrDecryption, offload.ErrInvalid))
			}
			sessionKey = make([]byte, l)
			if _, err := rand.Read(sessionKey); err != nil {
				return failed[[]byte](op, err)
			}
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	default:
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	}
	ct := bytes.Clone(req.Ciphertext)
	return submitSecret(e, ctx, op, req.Call, func(w *worker) ([]byte, error) {
		obj, err := e.object(w, h)
		if err != nil {
			return nil, err
		}
		err = w.p.DecryptInit(w.sh, []*pkcs11.Mechanism{mech}, obj)
		if err != nil && oaep != nil && tokenOAEP != nil && rawRefused(err) {
			// The key may not be used raw: let the token do OAEP.
			oaep = nil
			err = w.p.DecryptInit(w.sh, []*pkcs11.Mechanism{tokenOAEP}, obj)
		}
		if err != nil {
			err = ckErr("C_DecryptInit", err)
			if code, _ := ckCode(err); code == pkcs11.CKR_ARGUMENTS_BAD || code == pkcs11.CKR_MECHANISM_PARAM_INVALID {
				err = fmt.Errorf("%w: the token refuses these parameters: %w", err, offload.ErrUnsupported)
			}
			return nil, err
		}
		pt, err := w.p.Decrypt(w.sh, ct)
		if oaep != nil {
			if err != nil {
				return nil, ckDecryptErr("C_Decrypt", err)
			}
			if len(pt) > k {
				return nil, fmt.Errorf("pkcs11: CKM_RSA_X_509 returned %d bytes for a %d-byte modulus", len(pt), k)
			}
			em := make([]byte, k)
			copy(em[k-len(pt):], pt)
			clear(pt)
			msg, err := oaepDecode(em, oaep.Hash.New(), oaep.MGFHash.New(), oaep.Label)
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
