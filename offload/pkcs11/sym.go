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

// maxGCM is the engine's Info.MaxGCM: a GCM message longer than MaxInline
// is streamed to the token in parts (see Cipher), so the only bound is
// GCM's own.
var maxGCM = gcmauth.MaxInput

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
// counting). A request of at most MaxInline bytes is one
// C_EncryptInit/C_Encrypt or C_DecryptInit/C_Decrypt. A longer GCM message
// (CBC and CTR input is capped at MaxInline; GCM's additional data goes to
// the token whole, in the mechanism's parameters) is streamed to the token in parts of MaxInline bytes, all on
// one session: C_EncryptUpdate for each and C_EncryptFinal for the tag, or
// C_DecryptUpdate for each and C_DecryptFinal, which checks the tag. No
// plaintext leaves the engine before that check: whatever the token returns
// from C_DecryptUpdate is held (SoftHSM2 returns none, and all of it from
// C_DecryptFinal) and zeroed if the check fails. A token that cannot do GCM
// in parts fails such a message with an error wrapping
// offload.ErrUnsupported and its CKR code. A GCM message that does not
// authenticate fails with an error wrapping crypto/cipher's own
// authentication error (so the cipher adapter reports cipher.ErrOpen) and
// the token's CKR code.
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
	if len(req.Input) > e.cfg.MaxInline && (req.Mode != offload.ModeGCM || len(req.Input) > maxGCM) {
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
	in, decrypt, mode, part := bytes.Clone(req.Input), req.Decrypt, req.Mode, e.cfg.MaxInline
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
		if mode == offload.ModeGCM && len(in) > part {
			return gcmParts(w, ms, obj, decrypt, in, part)
		}
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

// gcmParts seals or opens a GCM message in parts of at most part bytes on
// w's session (see Cipher). The output is gathered here; when opening, it
// is returned only once C_DecryptFinal has checked the tag, and zeroed
// otherwise.
func gcmParts(w *worker, ms []*pkcs11.Mechanism, obj pkcs11.ObjectHandle, decrypt bool, in []byte, part int) (out []byte, err error) {
	init, update, final := w.p.EncryptInit, w.p.EncryptUpdate, w.p.EncryptFinal
	names := [3]string{"C_EncryptInit", "C_EncryptUpdate", "C_EncryptFinal"}
	size := len(in) + gcmTagSize
	if decrypt {
		init, update, final = w.p.DecryptInit, w.p.DecryptUpdate, w.p.DecryptFinal
		names = [3]string{"C_DecryptInit", "C_DecryptUpdate", "C_DecryptFinal"}
		size = len(in) - gcmTagSize
	}
	if err := init(w.sh, ms, obj); err != nil {
		return nil, ckErr(names[0], err)
	}
	out = make([]byte, 0, size)
	defer func() {
		if err != nil {
			clear(out[:cap(out)]) // plaintext that must not outlive a failed check
			out = nil
		}
	}()
	// add takes a part of the output, never past size: out's memory is the
	// only copy, and the one cleared on failure.
	add := func(call string, o []byte) error {
		defer clear(o)
		if len(out)+len(o) > size {
			return fmt.Errorf("pkcs11: %s returned %d bytes past the %d a GCM message of %d bytes makes", call, len(out)+len(o)-size, size, len(in))
		}
		out = append(out, o...)
		return nil
	}
	for p := in; len(p) > 0; p = p[min(part, len(p)):] {
		o, err := update(w.sh, p[:min(part, len(p))])
		if err != nil {
			err = ckErr(names[1], err)
			if code, _ := ckCode(err); code == pkcs11.CKR_FUNCTION_NOT_SUPPORTED || code == pkcs11.CKR_MECHANISM_INVALID {
				return nil, fmt.Errorf("pkcs11: the token cannot do GCM in parts, which a message of %d bytes (more than MaxInline %d) needs: %w: %w", len(in), part, offload.ErrUnsupported, err)
			}
			return nil, err
		}
		if err := add(names[1], o); err != nil {
			return nil, err
		}
	}
	o, err := final(w.sh)
	if err != nil {
		err = ckErr(names[2], err)
		if code, _ := ckCode(err); decrypt && gcmAuthFailure(code) {
			return nil, &gcmauth.Error{Engine: name, Cause: err}
		}
		return nil, err
	}
	if err := add(names[2], o); err != nil {
		return nil, err
	}
	if len(out) != size {
		return nil, fmt.Errorf("pkcs11: GCM in parts made %d bytes of a message of %d, want %d", len(out), len(in), size)
	}
	return out, nil
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
	case ctx == nil:
		return failed[offload.HashResult](offload.OpHash, offload.CheckContext(ctx))
	case ctx.Err() != nil:
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
