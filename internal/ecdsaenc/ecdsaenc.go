// Package ecdsaenc is what an engine whose device signs raw ECDSA needs
// around it, in pure Go: the digest the device may sign (Truncate), and the
// two forms of a signature, the device's fixed-size r‖s and the ASN.1 DER
// that crypto/ecdsa produces and accepts (DER, Raw), and, for a device that
// signs with the caller's nonce, hedged RFC 6979 nonces (Nonces).
//
// DER and Raw accept only what crypto/ecdsa's VerifyASN1 could accept:
// minimal DER with nothing after it, positive integers, and 0 < r, s < n for
// the curve's order n. Every malformed signature fails with an error
// wrapping ErrMalformed.
package ecdsaenc

import (
	"bytes"
	"crypto/elliptic"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformed reports a signature that is not a valid encoding of an ECDSA
// signature on the curve.
var ErrMalformed = errors.New("ecdsaenc: malformed ECDSA signature")

// Truncate returns the integer ECDSA signs for digest on curve c, as
// crypto/ecdsa derives it (SEC 1, section 4.1.3, step 5; bits2int in RFC
// 6979): the leftmost bits of digest, as many as the curve's order has,
// big-endian. A digest no longer than the order is returned as it is (not
// copied); a longer one is cut to the order's size in bytes, and shifted
// right when the order's size in bits is not a multiple of 8 (P-521 with a
// digest of 66 bytes or more).
//
// For every digest of 64 bytes or fewer (every SHA-2 and SHA-3 digest) the
// result is a prefix of digest no longer than the order, so a device that
// applies the same rule to its input (PKCS #11's CKM_ECDSA) leaves it as it
// is, and one that takes the integer as it is gets the right one.
func Truncate(c elliptic.Curve, digest []byte) []byte {
	nBits := c.Params().N.BitLen()
	size := (nBits + 7) / 8
	if len(digest) < size || (len(digest) == size && nBits%8 == 0) {
		return digest
	}
	out := bytes.Clone(digest[:size])
	if excess := size*8 - nBits; excess > 0 {
		for i := len(out) - 1; i >= 0; i-- {
			out[i] >>= excess
			if i > 0 {
				out[i] |= out[i-1] << (8 - excess)
			}
		}
	}
	return out
}

// DER returns the ASN.1 form of the signature rs, the fixed-size r‖s of
// curve c (each half the size of the curve's order in bytes, as PKCS #11's
// CKM_ECDSA and a TPM return it): SEQUENCE { INTEGER r, INTEGER s }, with
// minimal integers.
func DER(c elliptic.Curve, rs []byte) ([]byte, error) {
	size := orderSize(c)
	if len(rs) != 2*size {
		return nil, fmt.Errorf("%w: r‖s of %d bytes, %s needs %d", ErrMalformed, len(rs), c.Params().Name, 2*size)
	}
	r, s := rs[:size], rs[size:]
	if err := inRange(c, r); err != nil {
		return nil, fmt.Errorf("%w (r)", err)
	}
	if err := inRange(c, s); err != nil {
		return nil, fmt.Errorf("%w (s)", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addInteger(b, r)
		addInteger(b, s)
	})
	return b.Bytes()
}

// addInteger adds the minimal DER INTEGER of the positive big-endian v.
func addInteger(b *cryptobyte.Builder, v []byte) {
	v = bytes.TrimLeft(v, "\x00")
	b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) {
		if v[0]&0x80 != 0 {
			b.AddUint8(0) // keeps the integer positive
		}
		b.AddBytes(v)
	})
}

// Raw returns the fixed-size r‖s of the ASN.1 signature der on curve c,
// each half left-padded to the size of the curve's order in bytes.
func Raw(c elliptic.Curve, der []byte) ([]byte, error) {
	var (
		in   = cryptobyte.String(der)
		seq  cryptobyte.String
		r, s []byte
	)
	// ReadASN1Integer into a []byte accepts only minimal, non-negative
	// integers, and returns them without the leading zero.
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() {
		return nil, fmt.Errorf("%w: not SEQUENCE { INTEGER, INTEGER } in minimal DER", ErrMalformed)
	}
	size := orderSize(c)
	if len(r) > size || len(s) > size {
		return nil, fmt.Errorf("%w: integer longer than the order of %s", ErrMalformed, c.Params().Name)
	}
	out := make([]byte, 2*size)
	copy(out[size-len(r):size], r)
	copy(out[2*size-len(s):], s)
	if err := inRange(c, out[:size]); err != nil {
		return nil, fmt.Errorf("%w (r)", err)
	}
	if err := inRange(c, out[size:]); err != nil {
		return nil, fmt.Errorf("%w (s)", err)
	}
	return out, nil
}

func orderSize(c elliptic.Curve) int { return (c.Params().N.BitLen() + 7) / 8 }

// inRange checks 0 < v < n for v, big-endian in exactly the order's size
// in bytes. The values are public: they are compared as bytes.
func inRange(c elliptic.Curve, v []byte) error {
	if len(bytes.TrimLeft(v, "\x00")) == 0 {
		return fmt.Errorf("%w: zero", ErrMalformed)
	}
	if bytes.Compare(v, c.Params().N.FillBytes(make([]byte, len(v)))) >= 0 {
		return fmt.Errorf("%w: not below the order of %s", ErrMalformed, c.Params().Name)
	}
	return nil
}
