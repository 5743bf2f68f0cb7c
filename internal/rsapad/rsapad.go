// Package rsapad is the RSA padding of RFC 8017, in pure Go, for engines
// whose device offers raw RSA (or RSA with part of the padding) and nothing
// more: the encoded message a signature exponentiates, and the plaintext
// hidden in what a decryption returns.
//
// # Signing
//
// DigestInfo is the input of a device mechanism that adds the PKCS #1 v1.5
// block itself (PKCS #11's CKM_RSA_PKCS); EncodePKCS1v15 and EncodePSS are
// the whole k-byte block for a device that exponentiates it raw. They build
// exactly what crypto/rsa's SignPKCS1v15 and SignPSS sign, and fail as they
// do when the modulus is too small (rsa.ErrMessageTooLong). EncodePSS takes
// the salt length already resolved: offload.PSSSaltLength resolves
// rsa.PSSOptions.SaltLength for a modulus, and is the only place that does.
//
// # Decryption
//
// DecodeOAEP, DecodePKCS1v15 and DecodeSessionKey take the k-byte result
// of a raw RSA decryption. They run in time that does not depend on the
// padding's contents, and every failure is the bare rsa.ErrDecryption, so
// the error says nothing about where the padding was wrong. DecodeSessionKey
// is crypto/rsa's DecryptPKCS1v15SessionKey: on bad padding it leaves the
// caller's random key as it was and returns no error at all.
package rsapad

import (
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"io"

	"github.com/offcrypt/offcrypt/offload"
)

// digestInfoPrefixes are the DER of DigestInfo (RFC 8017, section 9.2,
// note 1) up to the digest: SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING
// header }. MD5+SHA1, the TLS 1.0 and 1.1 signature input, has none.
var digestInfoPrefixes = map[crypto.Hash][]byte{
	crypto.MD5:        {0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05, 0x00, 0x04, 0x10},
	crypto.SHA1:       {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224:     {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256:     {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384:     {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512:     {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
	crypto.SHA512_224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x05, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA512_256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x06, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA3_224:   {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x07, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA3_256:   {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x08, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA3_384:   {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x09, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA3_512:   {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x0a, 0x05, 0x00, 0x04, 0x40},
	crypto.MD5SHA1:    {},
}

// DigestInfo returns T, what a PKCS #1 v1.5 signature of digest with h
// pads: the DER DigestInfo of h and digest, or digest itself for
// crypto.Hash(0) (the caller's bytes are signed as they are, as
// rsa.SignPKCS1v15 allows) and for crypto.MD5SHA1. k is the modulus size in
// bytes; T must leave room for the 11 bytes of padding, or the error wraps
// rsa.ErrMessageTooLong. A digest whose length is not h's fails with
// offload.ErrInvalid, a hash crypto/rsa cannot sign with offload.ErrUnsupported.
func DigestInfo(k int, h crypto.Hash, digest []byte) ([]byte, error) {
	prefix, err := prefixFor(h, digest)
	if err != nil {
		return nil, err
	}
	if k < len(prefix)+len(digest)+11 {
		return nil, tooLong("PKCS #1 v1.5 with %v needs %d bytes of modulus, the key has %d", h, len(prefix)+len(digest)+11, k)
	}
	t := make([]byte, len(prefix)+len(digest))
	copy(t[copy(t, prefix):], digest)
	return t, nil
}

// EncodePKCS1v15 returns EMSA-PKCS1-v1_5 (RFC 8017, section 9.2) for a k-byte
// modulus: 00 01 FF…FF 00 T, with T as DigestInfo makes it, failing as
// DigestInfo does.
func EncodePKCS1v15(k int, h crypto.Hash, digest []byte) ([]byte, error) {
	t, err := DigestInfo(k, h, digest)
	if err != nil {
		return nil, err
	}
	em := make([]byte, k)
	em[1] = 1
	ps := em[2 : k-len(t)-1]
	for i := range ps {
		ps[i] = 0xff
	}
	copy(em[k-len(t):], t)
	return em, nil
}

func prefixFor(h crypto.Hash, digest []byte) ([]byte, error) {
	if h == 0 {
		return nil, nil
	}
	prefix, ok := digestInfoPrefixes[h]
	if !ok {
		return nil, fmt.Errorf("rsapad: PKCS #1 v1.5 with %v: %w", h, offload.ErrUnsupported)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("rsapad: %w: a %v digest is %d bytes, not %d", offload.ErrInvalid, h, h.Size(), len(digest))
	}
	return prefix, nil
}

// EncodePSS returns EMSA-PSS (RFC 8017, section 9.1.1) of digest for a
// modulus of bits bits, with h as the hash and MGF1's hash and a salt of
// saltLen bytes read from random, as rsa.SignPSS signs it. The result is
// the modulus' size in bytes, ready to exponentiate: when bits-1 is a
// multiple of 8 the encoding is one byte shorter and the result starts
// with a zero byte. saltLen is a length in bytes, never one of crypto/rsa's
// special values (offload.PSSSaltLength resolves those). A modulus too
// small for the hash and the salt fails with rsa.ErrMessageTooLong, as in
// crypto/rsa; a digest of the wrong length or a negative salt length with
// offload.ErrInvalid.
func EncodePSS(random io.Reader, bits int, h crypto.Hash, digest []byte, saltLen int) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("rsapad: PSS with hash %v: %w", h, offload.ErrUnsupported)
	}
	hLen := h.Size()
	if len(digest) != hLen {
		return nil, fmt.Errorf("rsapad: %w: a %v digest is %d bytes, not %d", offload.ErrInvalid, h, hLen, len(digest))
	}
	if saltLen < 0 {
		return nil, fmt.Errorf("rsapad: %w: PSS salt length %d", offload.ErrInvalid, saltLen)
	}
	emBits := bits - 1
	emLen := (emBits + 7) / 8
	if emBits < 0 || emLen < hLen+saltLen+2 {
		return nil, tooLong("PSS with %v and a %d-byte salt needs %d bytes of encoding, a %d-bit modulus has %d", h, saltLen, hLen+saltLen+2, bits, max(emLen, 0))
	}
	k := (bits + 7) / 8
	out := make([]byte, k)
	em := out[k-emLen:]

	// EM = maskedDB ‖ H ‖ 0xbc, DB = PS ‖ 0x01 ‖ salt.
	psLen := emLen - saltLen - hLen - 2
	db, hv := em[:emLen-hLen-1], em[emLen-hLen-1:emLen-1]
	salt := db[psLen+1:]
	if _, err := io.ReadFull(random, salt); err != nil {
		return nil, fmt.Errorf("rsapad: PSS salt: %w", err)
	}
	hh := h.New()
	var zeros [8]byte
	hh.Write(zeros[:])
	hh.Write(digest)
	hh.Write(salt)
	hh.Sum(hv[:0])
	db[psLen] = 1
	mgf1XOR(db, hh, hv)
	db[0] &= 0xff >> (8*emLen - emBits)
	em[emLen-1] = 0xbc
	return out, nil
}

func tooLong(format string, args ...any) error {
	return fmt.Errorf("rsapad: "+format+": %w: %w", append(args, rsa.ErrMessageTooLong, offload.ErrInvalid)...)
}

// mgf1XOR XORs out with MGF1(seed) under h (RFC 8017, appendix B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	var digest []byte
	for done := 0; done < len(out); {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		done += subtle.XORBytes(out[done:], out[done:], digest)
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}

// DecodeOAEP removes EME-OAEP padding (RFC 8017, section 7.1.2, steps 3a to
// 3g) from em, the k-byte result of a raw RSA decryption, with h hashing
// the label and mgfHash as MGF1's hash. It runs in time that does not
// depend on where, or whether, the padding is wrong, and every failure is
// rsa.ErrDecryption, as in crypto/rsa. em is not modified.
func DecodeOAEP(em []byte, h, mgfHash crypto.Hash, label []byte) ([]byte, error) {
	if !h.Available() || !mgfHash.Available() {
		return nil, fmt.Errorf("rsapad: OAEP with %v and MGF1 %v: %w", h, mgfHash, offload.ErrUnsupported)
	}
	k, hLen := len(em), h.Size()
	if k < 2*hLen+2 {
		return nil, rsa.ErrDecryption
	}
	hh := h.New()
	hh.Write(label)
	lHash := hh.Sum(nil)

	em = append([]byte(nil), em...) // unmasked in place
	defer clear(em)
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed, db := em[1:1+hLen], em[1+hLen:]
	mgf := hh
	if mgfHash != h {
		mgf = mgfHash.New()
	}
	mgf1XOR(seed, mgf, db)
	mgf1XOR(db, mgf, seed)

	lHashGood := subtle.ConstantTimeCompare(db[:hLen], lHash)

	// The rest of db is zero or more zeros, a one, then the message. Find
	// the one without branching on secret data.
	lookingForIndex, index, invalid := 1, 0, 0
	rest := db[hLen:]
	for i := range rest {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHashGood&^invalid&^lookingForIndex != 1 {
		return nil, rsa.ErrDecryption
	}
	return append([]byte(nil), rest[index+1:]...), nil
}

// pkcs1v15 checks EME-PKCS1-v1_5 padding (RFC 8017, section 7.2.2, step 3)
// in em without branching on it: valid is 1 when em is 00 02 PS 00 M with
// at least 8 nonzero bytes of PS, and then index is where M starts.
func pkcs1v15(em []byte) (valid, index int) {
	if len(em) < 11 {
		return 0, 0
	}
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	secondByteIsTwo := subtle.ConstantTimeByteEq(em[1], 2)
	lookingForIndex := 1
	for i := 2; i < len(em); i++ {
		equals0 := subtle.ConstantTimeByteEq(em[i], 0)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals0, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals0, 0, lookingForIndex)
	}
	validPS := subtle.ConstantTimeLessOrEq(2+8, index)
	valid = firstByteIsZero & secondByteIsTwo & (^lookingForIndex & 1) & validPS
	return valid, subtle.ConstantTimeSelect(valid, index+1, 0)
}

// DecodePKCS1v15 removes EME-PKCS1-v1_5 padding from em, the k-byte result
// of a raw RSA decryption, as rsa.DecryptPKCS1v15 does: the padding is
// checked in constant time and any failure is rsa.ErrDecryption. Whether
// it failed is still visible to whoever sees the error; a caller that must
// not reveal that (a TLS RSA key exchange) uses DecodeSessionKey.
func DecodePKCS1v15(em []byte) ([]byte, error) {
	valid, index := pkcs1v15(em)
	if valid == 0 {
		return nil, rsa.ErrDecryption
	}
	return append([]byte(nil), em[index:]...), nil
}

// DecodeSessionKey is rsa.DecryptPKCS1v15SessionKey over em, the k-byte
// result of a raw RSA decryption: when em holds a well-padded message of
// exactly len(key) bytes, it is copied into key; otherwise key keeps the
// random bytes the caller put there. Which of the two happened is decided
// and acted on in constant time, and no error tells it. The only error is
// rsa.ErrDecryption for a key too long for the modulus, which depends on
// the sizes alone.
func DecodeSessionKey(em, key []byte) error {
	k := len(em)
	if k-(len(key)+3+8) < 0 {
		return rsa.ErrDecryption
	}
	valid, index := pkcs1v15(em)
	valid &= subtle.ConstantTimeEq(int32(k-index), int32(len(key)))
	subtle.ConstantTimeCopy(valid, key, em[k-len(key):])
	return nil
}
