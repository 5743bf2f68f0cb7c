package pkcs11

import (
	"crypto/rsa"
	"crypto/subtle"
	"encoding/binary"
	"hash"
)

// mgf1XOR XORs out with MGF1(seed) (RFC 8017, appendix B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	var digest []byte
	for done := 0; done < len(out); {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}

// oaepDecode removes EME-OAEP padding (RFC 8017, section 7.1.2, steps 3a-3g)
// from em, the k-byte result of a raw RSA decryption, in time that does not
// depend on where or whether the padding is wrong. h hashes the label, mgf
// is MGF1's hash. Every failure is rsa.ErrDecryption, as in crypto/rsa.
func oaepDecode(em []byte, h, mgf hash.Hash, label []byte) ([]byte, error) {
	k, hLen := len(em), h.Size()
	if k < 2*hLen+2 {
		return nil, rsa.ErrDecryption
	}
	h.Reset()
	h.Write(label)
	lHash := h.Sum(nil)

	em = append([]byte(nil), em...) // unmasked in place
	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed, db := em[1:1+hLen], em[1+hLen:]
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
