//go:build cgo

package pkcs11

import "C"

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"encoding/binary"
	"fmt"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/offload"
)

const gcmTagSize = gcmauth.TagSize

// gcmAuthFailure reports whether a C_Decrypt error under CKM_AES_GCM says
// the message did not authenticate. Tokens differ: PKCS #11 3.0 names
// CKR_ENCRYPTED_DATA_INVALID, and SoftHSM 2.6 answers CKR_GENERAL_ERROR.
func gcmAuthFailure(code pkcs11.Error) bool {
	switch code {
	case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		pkcs11.CKR_DATA_INVALID, pkcs11.CKR_GENERAL_ERROR:
		return true
	}
	return false
}

// ctrParams returns CK_AES_CTR_PARAMS { CK_ULONG ulCounterBits; CK_BYTE
// cb[16]; } for a 128-bit counter (the whole block counts, as in
// crypto/cipher's CTR), in the platform's layout: miekg/pkcs11 has no
// constructor for it.
func ctrParams(iv []byte) []byte {
	n := int(C.sizeof_ulong) // CK_ULONG is unsigned long
	p := make([]byte, n+aes.BlockSize)
	switch n {
	case 8:
		binary.NativeEndian.PutUint64(p, 128)
	default:
		binary.NativeEndian.PutUint32(p, 128)
	}
	copy(p[n:], iv)
	return p
}

// gcmMaxIV is the longest GCM nonce Cipher passes to a token: PKCS #11
// v2.40 first bounded CK_GCM_PARAMS.ulIvLen at 256 bytes, and SoftHSM2
// computes wrong results beyond it (Wycheproof's 257-byte nonces).
const gcmMaxIV = 256

// Cipher runs one AES operation on the token with a secret key found by
// FindKey (type=secret-key) or made by GenerateKey: GCM with CKM_AES_GCM
// (the IV as the nonce, AAD, a 128-bit tag appended to the ciphertext),
// CBC with CKM_AES_CBC (no padding: whole blocks and a 16-byte IV) and CTR
// with CKM_AES_CTR (a 16-byte initial counter block, all 128 bits
// counting). Each request is one C_EncryptInit/C_Encrypt or
// C_DecryptInit/C_Decrypt. A GCM message that does not authenticate fails
// with an error wrapping crypto/cipher's own authentication error (so the
// cipher adapter reports cipher.ErrOpen) and the token's CKR code.
//
// The work runs on the engine's workers, after the caller may have stopped
// waiting, so req.Out is never written: the result is always a new slice.
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	const op = offload.OpCipher
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("pkcs11: nil request: %w", offload.ErrInvalid))
	}
	alg, err := req.Check()
	h, err := e.prepare(alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	invalid := func(format string, args ...any) *offload.Future[[]byte] {
		return failed[[]byte](op, fmt.Errorf("pkcs11: "+format+": %w", append(args, offload.ErrInvalid)...))
	}
	if len(req.Input) > e.cfg.MaxInline {
		return invalid("%d bytes of input, more than MaxInline %d", len(req.Input), e.cfg.MaxInline)
	}
	var mech func() (*pkcs11.Mechanism, func())
	iv := bytes.Clone(req.IV)
	switch req.Mode {
	case offload.ModeGCM:
		if len(iv) == 0 || len(iv) > e.cfg.MaxInline {
			return invalid("GCM nonce of %d bytes", len(iv))
		}
		if len(iv) > gcmMaxIV {
			return failed[[]byte](op, fmt.Errorf("pkcs11: GCM nonce of %d bytes, more than the %d PKCS #11 tokens take: %w", len(iv), gcmMaxIV, offload.ErrUnsupported))
		}
		if len(req.AAD) > e.cfg.MaxInline {
			return invalid("%d bytes of AAD, more than MaxInline %d", len(req.AAD), e.cfg.MaxInline)
		}
		if req.Decrypt && len(req.Input) < gcmTagSize {
			return failed[[]byte](op, &gcmauth.Error{Engine: name})
		}
		aad := bytes.Clone(req.AAD)
		mech = func() (*pkcs11.Mechanism, func()) {
			// The parameters live in C memory that the token may read
			// until the operation ends: freed after C_Encrypt/C_Decrypt.
			p := pkcs11.NewGCMParams(iv, aad, gcmTagSize*8)
			return pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p), p.Free
		}
	case offload.ModeCBC:
		if len(iv) != aes.BlockSize {
			return invalid("CBC IV of %d bytes, want %d", len(iv), aes.BlockSize)
		}
		if len(req.Input)%aes.BlockSize != 0 {
			return invalid("CBC input of %d bytes, not whole blocks", len(req.Input))
		}
		mech = func() (*pkcs11.Mechanism, func()) {
			return pkcs11.NewMechanism(pkcs11.CKM_AES_CBC, iv), func() {}
		}
	case offload.ModeCTR:
		if len(iv) != aes.BlockSize {
			return invalid("CTR counter block of %d bytes, want %d", len(iv), aes.BlockSize)
		}
		params := ctrParams(iv)
		mech = func() (*pkcs11.Mechanism, func()) {
			return pkcs11.NewMechanism(pkcs11.CKM_AES_CTR, params), func() {}
		}
	}
	if req.Mode != offload.ModeGCM && len(req.Input) == 0 {
		return offload.Resolved([]byte{}, nil)
	}
	in, decrypt, mode := bytes.Clone(req.Input), req.Decrypt, req.Mode
	var release func([]byte)
	if decrypt {
		release = clearBytes // plaintext
	}
	return submitJob(e, ctx, op, true, false, req.Call, func(w *worker) ([]byte, error) {
		obj, err := e.object(w, h)
		if err != nil {
			return nil, err
		}
		m, free := mech()
		defer free()
		ms := []*pkcs11.Mechanism{m}
		if decrypt {
			if err := w.p.DecryptInit(w.sh, ms, obj); err != nil {
				return nil, ckErr("C_DecryptInit", err)
			}
			out, err := w.p.Decrypt(w.sh, in)
			if err != nil {
				err = ckErr("C_Decrypt", err)
				if code, _ := ckCode(err); mode == offload.ModeGCM && gcmAuthFailure(code) {
					return nil, &gcmauth.Error{Engine: name, Cause: err}
				}
				return nil, err
			}
			return out, nil
		}
		if err := w.p.EncryptInit(w.sh, ms, obj); err != nil {
			return nil, ckErr("C_EncryptInit", err)
		}
		out, err := w.p.Encrypt(w.sh, in)
		if err != nil {
			return nil, ckErr("C_Encrypt", err)
		}
		return out, nil
	}, release)
}

// digestMechs are the C_Digest mechanisms of the SHA-2 hashes.
var digestMechs = map[crypto.Hash]uint{
	crypto.SHA224: pkcs11.CKM_SHA224,
	crypto.SHA256: pkcs11.CKM_SHA256,
	crypto.SHA384: pkcs11.CKM_SHA384,
	crypto.SHA512: pkcs11.CKM_SHA512,
}

// Hash fails with offload.ErrUnsupported (after the checks every request
// gets: a closed engine, an ended context). A HashRequest carries the whole
// running state, as the standard library marshals it, and leaves the engine
// stateless between requests; a PKCS #11 token keeps the running state
// inside one session and can neither take nor give such a state. The hashes
// Info lists are served by HashSession, which hasher/ uses; a whole message
// at once is Digest.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	switch {
	case e.closed.Load():
		return failed[offload.HashResult](offload.OpHash, errClosed)
	case ctx != nil && ctx.Err() != nil:
		return failed[offload.HashResult](offload.OpHash, context.Cause(ctx))
	}
	return failed[offload.HashResult](offload.OpHash,
		fmt.Errorf("pkcs11: hash requests carry the running state, which a token cannot take (use HashSession): %w", offload.ErrUnsupported))
}

// Digest hashes data in one C_Digest on the token with SHA-224, SHA-256,
// SHA-384 or SHA-512, where the token's mechanism list has it (otherwise
// offload.ErrUnsupported, before any session is used). data may not exceed
// Info().MaxInline. It is counted in Stats as a hash operation.
func (e *Engine) Digest(ctx context.Context, h crypto.Hash, data []byte) *offload.Future[[]byte] {
	const op = offload.OpHash
	m, ok := digestMechs[h]
	if !ok || !e.hasMech(m, pkcs11.CKF_DIGEST) {
		return failed[[]byte](op, fmt.Errorf("pkcs11: digest %v: %w", h, offload.ErrUnsupported))
	}
	if len(data) > e.cfg.MaxInline {
		return failed[[]byte](op, fmt.Errorf("pkcs11: %d bytes to hash, more than MaxInline %d: %w", len(data), e.cfg.MaxInline, offload.ErrInvalid))
	}
	if e.closed.Load() {
		return failed[[]byte](op, errClosed)
	}
	in := bytes.Clone(data)
	return submit(e, ctx, op, true, offload.Call{}, func(w *worker) ([]byte, error) {
		if err := w.p.DigestInit(w.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(m, nil)}); err != nil {
			return nil, ckErr("C_DigestInit", err)
		}
		sum, err := w.p.Digest(w.sh, in)
		if err != nil {
			return nil, ckErr("C_Digest", err)
		}
		if len(sum) != h.Size() {
			return nil, fmt.Errorf("pkcs11: C_Digest returned %d bytes for %v", len(sum), h)
		}
		return sum, nil
	})
}
