package ecdsaenc

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"
	"testing/iotest"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNoncesRFC6979 checks the deterministic nonces (no random source)
// against RFC 6979's appendix A.2.5 (P-256) and A.2.6 (P-384), message
// "sample".
func TestNoncesRFC6979(t *testing.T) {
	s256 := sha256.Sum256([]byte("sample"))
	s384 := sha512.Sum384([]byte("sample"))
	s512 := sha512.Sum512([]byte("sample"))
	tests := []struct {
		name   string
		c      elliptic.Curve
		h      crypto.Hash
		x      string
		digest []byte
		k      string
	}{
		{"P-256/SHA-256", elliptic.P256(), crypto.SHA256,
			"C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", s256[:],
			"A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60"},
		{"P-256/SHA-512", elliptic.P256(), crypto.SHA512,
			"C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", s512[:],
			"5FA81C63109BADB88C1F367B47DA606DA28CAD69AA22C4FE6AD7DF73A7173AA5"},
		{"P-384/SHA-384", elliptic.P384(), crypto.SHA384,
			"6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5", s384[:],
			"94ED910D1A099DAD3254E9242AE85ABDE4BA15168EAF0CA87A555FD56D10FBCA2907E3E83BA95368623B8C4686915CF9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewNonces(tc.c, tc.h, unhex(t, tc.x), tc.digest, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Next(); !bytes.Equal(got, unhex(t, tc.k)) {
				t.Errorf("k = %X, want %s", got, tc.k)
			}
		})
	}
}

// TestNoncesHedged checks that a random source makes every nonce
// different, that successive candidates differ and stay in range, and that
// a failing source is an error.
func TestNoncesHedged(t *testing.T) {
	c := elliptic.P384()
	d := bytes.Repeat([]byte{7}, 48)
	digest := bytes.Repeat([]byte{9}, 48)
	seen := map[string]bool{}
	for range 8 {
		g, err := NewNonces(c, crypto.SHA384, d, digest, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			k := g.Next()
			if len(k) != 48 || seen[string(k)] {
				t.Fatalf("nonce %X repeated or of the wrong size", k)
			}
			if err := inRange(c, k); err != nil {
				t.Fatalf("nonce %X: %v", k, err)
			}
			seen[string(k)] = true
		}
	}
	boom := errors.New("no entropy")
	if _, err := NewNonces(c, crypto.SHA384, d, digest, iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("a failing random source gave %v", err)
	}
	if _, err := NewNonces(c, crypto.SHA384, make([]byte, 49), digest, nil); err == nil {
		t.Error("a 49-byte scalar on P-384 was accepted")
	}
}
