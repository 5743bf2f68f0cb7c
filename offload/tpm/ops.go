package tpm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/offcrypt/offcrypt/offload"
)

// maxBuffer is the most a hash sequence takes per command (TPM2B_MAX_BUFFER
// is 1,024 bytes on every TPM in the field; TPM_PT_INPUT_BUFFER says so).
const maxBuffer = 1024

// hashAlg maps a crypto.Hash onto the TPM's algorithm.
func hashAlg(h crypto.Hash) (tpm2.TPMAlgID, error) {
	switch h {
	case crypto.SHA1:
		return tpm2.TPMAlgSHA1, nil
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, nil
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, nil
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, nil
	}
	return 0, fmt.Errorf("tpm: hash %v: %w", h, offload.ErrUnsupported)
}

// checkDigest checks that digest has h's size.
func checkDigest(h crypto.Hash, digest []byte) (tpm2.TPMAlgID, error) {
	alg, err := hashAlg(h)
	if err != nil {
		return 0, err
	}
	if len(digest) != h.Size() {
		return 0, fmt.Errorf("tpm: digest of %d bytes for %v (%d): %w", len(digest), h, h.Size(), offload.ErrInvalid)
	}
	return alg, nil
}

// sign runs TPM2_Sign with scheme on k; the digest travels encrypted.
func (d *Device) sign(ctx context.Context, k *Key, digest []byte, scheme tpm2.TPMTSigScheme) (*tpm2.TPMTSignature, error) {
	if !k.CanSign() {
		return nil, fmt.Errorf("tpm: key cannot sign: %w", errWrongKey)
	}
	kh, auth, err := d.use(ctx, k)
	if err != nil {
		return nil, err
	}
	var sig *tpm2.TPMTSignature
	err = d.runSlot(ctx, k, func(t transport.TPM) error {
		kh.Auth = d.authFor(auth, true, false)
		rsp, err := tpm2.Sign{
			KeyHandle:  kh,
			Digest:     tpm2.TPM2BDigest{Buffer: digest},
			InScheme:   scheme,
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(t)
		if err != nil {
			return wrapRC("Sign", err)
		}
		sig = &rsp.Signature
		return nil
	})
	return sig, d.done(k, err)
}

// SignECDSA signs digest (the hash h of the message) with an ECDSA key and
// returns r and s. The DER encoding (minimal integers, as crypto/ecdsa
// produces) is the caller's: the engine hands r and s to offcrypt's shared
// encoder.
func (d *Device) SignECDSA(ctx context.Context, k *Key, h crypto.Hash, digest []byte) (r, s *big.Int, err error) {
	if err := d.ready(ctx); err != nil {
		return nil, nil, err
	}
	if k.typ != offload.KeyECDSAP256 && k.typ != offload.KeyECDSAP384 {
		return nil, nil, fmt.Errorf("tpm: ECDSA with an %v key: %w", k.typ, errWrongKey)
	}
	alg, err := checkDigest(h, digest)
	if err != nil {
		return nil, nil, err
	}
	sig, err := d.sign(ctx, k, digest, tpm2.TPMTSigScheme{
		Scheme:  tpm2.TPMAlgECDSA,
		Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: alg}),
	})
	if err != nil {
		return nil, nil, err
	}
	e, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, nil, fmt.Errorf("tpm: Sign answered a %v signature: %w", sig.SigAlg, err)
	}
	return new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer), nil
}

// SignRSA signs digest (the hash h of the message) with the TPM's own RSA
// scheme: RSASSA-PKCS1-v1_5, or RSA-PSS when pss is set. The TPM chooses the
// PSS salt length: swtpm (libtpms) uses the hash length, what TLS 1.3
// requires, but chips differ (some use the largest the modulus allows), so a
// caller that needs one salt length uses RSARaw with offcrypt's encoders.
func (d *Device) SignRSA(ctx context.Context, k *Key, h crypto.Hash, digest []byte, pss bool) ([]byte, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	if k.typ != offload.KeyRSA {
		return nil, fmt.Errorf("tpm: RSA signature with an %v key: %w", k.typ, errWrongKey)
	}
	alg, err := checkDigest(h, digest)
	if err != nil {
		return nil, err
	}
	scheme := tpm2.TPMTSigScheme{
		Scheme:  tpm2.TPMAlgRSASSA,
		Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSchemeHash{HashAlg: alg}),
	}
	if pss {
		scheme = tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgRSAPSS,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgRSAPSS, &tpm2.TPMSSchemeHash{HashAlg: alg}),
		}
	}
	sig, err := d.sign(ctx, k, digest, scheme)
	if err != nil {
		return nil, err
	}
	var rs *tpm2.TPMSSignatureRSA
	if pss {
		rs, err = sig.Signature.RSAPSS()
	} else {
		rs, err = sig.Signature.RSASSA()
	}
	if err != nil {
		return nil, fmt.Errorf("tpm: Sign answered a %v signature: %w", sig.SigAlg, err)
	}
	return rs.Sig.Buffer, nil
}

// DecryptScheme says how RSADecrypt unpads. The zero value is PKCS #1 v1.5
// (RSAES), as rsa.PrivateKey.Decrypt with nil options.
type DecryptScheme struct {
	// OAEP selects RSA-OAEP with Hash (for the label and MGF1, as the TPM
	// uses one hash for both) and Label.
	OAEP  bool
	Hash  crypto.Hash
	Label []byte
}

// RSADecrypt decrypts ciphertext with an RSA key in the TPM, which removes
// the padding scheme names. Ciphertext and plaintext cross the bus
// encrypted.
func (d *Device) RSADecrypt(ctx context.Context, k *Key, ciphertext []byte, scheme DecryptScheme) ([]byte, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	in := tpm2.TPMTRSADecrypt{
		Scheme:  tpm2.TPMAlgRSAES,
		Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAES, &tpm2.TPMSEncSchemeRSAES{}),
	}
	var label tpm2.TPM2BData
	if scheme.OAEP {
		alg, err := hashAlg(scheme.Hash)
		if err != nil {
			return nil, err
		}
		in = tpm2.TPMTRSADecrypt{
			Scheme:  tpm2.TPMAlgOAEP,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgOAEP, &tpm2.TPMSEncSchemeOAEP{HashAlg: alg}),
		}
		// The TPM hashes the label with a terminating zero byte, adding
		// one when the label lacks it: only an empty label, or one that
		// ends in zero, means the same to the TPM as to crypto/rsa. Other
		// labels need RSARaw and OAEP decoding in Go.
		if n := len(scheme.Label); n > 0 && scheme.Label[n-1] != 0 {
			return nil, fmt.Errorf("tpm: an OAEP label that does not end in a zero byte: %w", offload.ErrUnsupported)
		}
		label.Buffer = scheme.Label
	} else if len(scheme.Label) > 0 {
		return nil, fmt.Errorf("tpm: a label without OAEP: %w", offload.ErrInvalid)
	}
	return d.rsaDecrypt(ctx, k, ciphertext, in, label)
}

// RSARaw applies the RSA private key to c (c^d mod n, TPM2_RSA_Decrypt with
// the null scheme) for keys whose attributes allow it: offcrypt's encoders
// pad in Go, so every PSS salt and PKCS #1 v1.5 encoding is available. c
// must be as long as the modulus.
func (d *Device) RSARaw(ctx context.Context, k *Key, c []byte) ([]byte, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	return d.rsaDecrypt(ctx, k, c, tpm2.TPMTRSADecrypt{Scheme: tpm2.TPMAlgNull}, tpm2.TPM2BData{})
}

func (d *Device) rsaDecrypt(ctx context.Context, k *Key, c []byte, scheme tpm2.TPMTRSADecrypt, label tpm2.TPM2BData) ([]byte, error) {
	if !k.CanDecrypt() {
		return nil, fmt.Errorf("tpm: RSA decryption with a key that cannot decrypt: %w", errWrongKey)
	}
	if len(c) != (k.bits+7)/8 {
		return nil, fmt.Errorf("tpm: ciphertext of %d bytes for an RSA-%d key: %w", len(c), k.bits, offload.ErrInvalid)
	}
	if new(big.Int).SetBytes(c).Cmp(k.public.(*rsa.PublicKey).N) >= 0 {
		return nil, fmt.Errorf("tpm: ciphertext not below the modulus: %w: %w", offload.ErrInvalid, rsa.ErrDecryption)
	}
	kh, auth, err := d.use(ctx, k)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = d.runSlot(ctx, k, func(t transport.TPM) error {
		kh.Auth = d.authFor(auth, true, true)
		rsp, err := tpm2.RSADecrypt{
			KeyHandle:  kh,
			CipherText: tpm2.TPM2BPublicKeyRSA{Buffer: c},
			InScheme:   scheme,
			Label:      label,
		}.Execute(t)
		if err != nil {
			return &rcError{cmd: "RSA_Decrypt", err: err, decrypt: true}
		}
		out = rsp.Message.Buffer
		return nil
	})
	return out, d.done(k, err)
}

// Random fills p with random bytes from the TPM, in as many GetRandom
// commands as the TPM's per-command limit takes. The bytes cross the bus
// encrypted.
func (d *Device) Random(ctx context.Context, p []byte) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	for len(p) > 0 {
		want := min(len(p), 0xffff)
		var got []byte
		err := d.run(ctx, func(t transport.TPM) error {
			rsp, err := tpm2.GetRandom{BytesRequested: uint16(want)}.Execute(t, d.encryptOnly()...)
			if err != nil {
				return wrapRC("GetRandom", err)
			}
			got = rsp.RandomBytes.Buffer
			return nil
		})
		if err != nil {
			return err
		}
		if len(got) == 0 || len(got) > want {
			return fmt.Errorf("tpm: GetRandom answered %d bytes for %d", len(got), want)
		}
		n := copy(p, got)
		clear(got)
		p = p[n:]
	}
	return nil
}

// Sequence is a hash computed by the TPM (TPM2_HashSequenceStart): any
// number of them may be open at once; the device moves them in and out of
// the TPM's slots as needed.
type Sequence struct {
	hash crypto.Hash
	obj  *object
}

// StartHash opens a hash sequence for h.
func (d *Device) StartHash(ctx context.Context, h crypto.Hash) (*Sequence, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	alg, err := hashAlg(h)
	if err != nil {
		return nil, err
	}
	seq := &Sequence{hash: h, obj: &object{kind: kindSequence, gen: d.gen}}
	handle, err := d.inSlot(ctx, nil, func() (handle tpm2.TPMHandle, err error) {
		err = d.run(ctx, func(t transport.TPM) error {
			rsp, err := tpm2.HashSequenceStart{HashAlg: alg}.Execute(t)
			if err != nil {
				return wrapRC("HashSequenceStart", err)
			}
			handle = rsp.SequenceHandle
			return nil
		})
		return handle, err
	})
	if err != nil {
		return nil, d.slotError("starting a hash sequence", err)
	}
	seq.obj.handle = handle
	d.track(seq.obj)
	return seq, nil
}

// UpdateHash adds data to the sequence, 1,024 bytes per command.
func (d *Device) UpdateHash(ctx context.Context, seq *Sequence, data []byte) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	if seq.obj == nil {
		return fmt.Errorf("tpm: hash sequence already finished: %w", offload.ErrInvalid)
	}
	h, err := d.pin(ctx, seq.obj)
	if err != nil {
		return d.slotError("loading the hash sequence", err)
	}
	defer d.unpin(seq.obj)
	for len(data) > 0 {
		n := min(len(data), maxBuffer)
		chunk := data[:n]
		err := d.run(ctx, func(t transport.TPM) error {
			_, err := tpm2.SequenceUpdate{
				SequenceHandle: tpm2.AuthHandle{Handle: h, Auth: tpm2.PasswordAuth(nil)},
				Buffer:         tpm2.TPM2BMaxBuffer{Buffer: chunk},
			}.Execute(t)
			return wrapRC("SequenceUpdate", err)
		})
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// FinishHash adds the last data (any length) and returns the digest; the
// sequence is gone from the TPM afterwards.
func (d *Device) FinishHash(ctx context.Context, seq *Sequence, data []byte) ([]byte, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	if len(data) > maxBuffer {
		if err := d.UpdateHash(ctx, seq, data[:len(data)-maxBuffer]); err != nil {
			return nil, err
		}
		data = data[len(data)-maxBuffer:]
	}
	if seq.obj == nil {
		return nil, fmt.Errorf("tpm: hash sequence already finished: %w", offload.ErrInvalid)
	}
	h, err := d.pin(ctx, seq.obj)
	if err != nil {
		return nil, d.slotError("loading the hash sequence", err)
	}
	var sum []byte
	err = d.run(ctx, func(t transport.TPM) error {
		rsp, err := tpm2.SequenceComplete{
			SequenceHandle: tpm2.AuthHandle{Handle: h, Auth: tpm2.PasswordAuth(nil)},
			Buffer:         tpm2.TPM2BMaxBuffer{Buffer: data},
			Hierarchy:      tpm2.TPMRHNull,
		}.Execute(t)
		if err != nil {
			return wrapRC("SequenceComplete", err)
		}
		sum = rsp.Result.Buffer
		return nil
	})
	d.unpin(seq.obj)
	if err != nil {
		return nil, err
	}
	// SequenceComplete flushed the sequence object.
	seq.obj.handle = 0
	_ = d.forget(ctx, seq.obj)
	seq.obj = nil
	return sum, nil
}

// AbortHash flushes an unfinished sequence.
func (d *Device) AbortHash(ctx context.Context, seq *Sequence) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	if seq.obj == nil {
		return nil
	}
	err := d.forget(ctx, seq.obj)
	seq.obj = nil
	return err
}
