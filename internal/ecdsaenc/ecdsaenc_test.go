package ecdsaenc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"testing"
)

var curves = []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()}

// bits2int is RFC 6979's definition, section 2.3.2, on big integers.
func bits2int(c elliptic.Curve, digest []byte) *big.Int {
	x := new(big.Int).SetBytes(digest)
	if excess := len(digest)*8 - c.Params().N.BitLen(); excess > 0 {
		x.Rsh(x, uint(excess))
	}
	return x
}

// TestTruncate compares Truncate with bits2int for every digest length up
// to 80 bytes on every curve, and, for digests of 64 bytes or fewer (where
// the result is a prefix), signs the truncated digest with crypto/ecdsa
// and verifies the signature against the whole digest.
func TestTruncate(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, c := range curves {
		priv, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		size := (c.Params().N.BitLen() + 7) / 8
		for n := 0; n <= 80; n++ {
			d := make([]byte, n)
			for i := range d {
				d[i] = byte(rng.Uint32())
			}
			if n > 0 && n%3 == 0 {
				d[0] |= 0x80
			}
			kept := bytes.Clone(d)
			got := Truncate(c, d)
			if !bytes.Equal(d, kept) {
				t.Fatalf("%s, %d bytes: Truncate changed its input", c.Params().Name, n)
			}
			if len(got) > size || new(big.Int).SetBytes(got).Cmp(bits2int(c, d)) != 0 {
				t.Fatalf("%s, %d bytes: Truncate = %x, want bits2int %x", c.Params().Name, n, got, bits2int(c, d))
			}
			if n > 64 || (n%16 != 0 && n != size-1 && n != size+1) {
				continue // signing is slow under -race: the boundaries and a few others
			}
			if !bytes.HasPrefix(d, got) {
				t.Fatalf("%s, %d bytes: %x is not a prefix", c.Params().Name, n, got)
			}
			sig, err := ecdsa.SignASN1(rand.Reader, priv, got)
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.VerifyASN1(&priv.PublicKey, d, sig) {
				t.Fatalf("%s, %d bytes: a signature of the truncated digest does not verify for the whole", c.Params().Name, n)
			}
		}
	}
	// The shift: P-521 with 66 bytes of ones keeps 521 of them.
	got := Truncate(elliptic.P521(), bytes.Repeat([]byte{0xff}, 70))
	if want := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 521), big.NewInt(1)); new(big.Int).SetBytes(got).Cmp(want) != 0 {
		t.Fatalf("P-521, 70 bytes of ones: %x", got)
	}
	// P-256 with SHA-512, the case a raw-ECDSA device gets wrong without it.
	d := sha512.Sum512([]byte("m"))
	if got := Truncate(elliptic.P256(), d[:]); !bytes.Equal(got, d[:32]) {
		t.Fatalf("P-256, SHA-512: %x", got)
	}
}

func rsOf(c elliptic.Curve, r, s *big.Int) []byte {
	size := (c.Params().N.BitLen() + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out
}

// TestDERRoundTrip signs with crypto/ecdsa, converts its DER to r‖s and
// back, and checks both directions against encoding/asn1 for random and
// edge values (leading zeros, high bits, 1 and n-1).
func TestDERRoundTrip(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	for _, c := range curves {
		name := c.Params().Name
		n := c.Params().N
		priv, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte(name))
		for range 10 {
			sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Raw(c, sig)
			if err != nil {
				t.Fatalf("%s: Raw(%x): %v", name, sig, err)
			}
			back, err := DER(c, rs)
			if err != nil || !bytes.Equal(back, sig) {
				t.Fatalf("%s: DER(Raw(sig)) = %x, %v; want %x", name, back, err, sig)
			}
			if !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], back) {
				t.Fatalf("%s: re-encoded signature does not verify", name)
			}
		}
		one, nm1 := big.NewInt(1), new(big.Int).Sub(n, big.NewInt(1))
		values := []*big.Int{one, nm1, big.NewInt(0x80), big.NewInt(0x7f), new(big.Int).Rsh(n, 9)}
		for range 200 {
			v, err := rand.Int(rand.Reader, nm1)
			if err != nil {
				t.Fatal(err)
			}
			values = append(values, v.Add(v, one).Rsh(v, uint(rng.IntN(64))))
		}
		for i, r := range values {
			if r.Sign() == 0 {
				continue
			}
			s := values[(i*7+3)%len(values)]
			rs := rsOf(c, r, s)
			got, err := DER(c, rs)
			if err != nil {
				t.Fatalf("%s: DER(%x): %v", name, rs, err)
			}
			want, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: DER(%x) = %x, want %x", name, rs, got, want)
			}
			if back, err := Raw(c, got); err != nil || !bytes.Equal(back, rs) {
				t.Fatalf("%s: Raw(%x) = %x, %v", name, got, back, err)
			}
		}
	}
}

// TestBadSignatures is every malformed input, each its own case.
func TestBadSignatures(t *testing.T) {
	c := elliptic.P256()
	n := c.Params().N
	good := rsOf(c, big.NewInt(0x1234), new(big.Int).Sub(n, big.NewInt(1)))
	goodDER, err := DER(c, good)
	if err != nil {
		t.Fatal(err)
	}
	der := func(r, s []byte) []byte {
		body := append(append([]byte{0x02, byte(len(r))}, r...), append([]byte{0x02, byte(len(s))}, s...)...)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	nBytes := n.Bytes()
	rawTests := []struct {
		name string
		rs   []byte
	}{
		{"empty", nil},
		{"odd length", good[:63]},
		{"r‖s of P-384 size", make([]byte, 96)},
		{"r zero", append(make([]byte, 32), good[32:]...)},
		{"s zero", append(bytes.Clone(good[:32]), make([]byte, 32)...)},
		{"r equal to n", append(n.FillBytes(make([]byte, 32)), good[32:]...)},
		{"s all ones", append(bytes.Clone(good[:32]), bytes.Repeat([]byte{0xff}, 32)...)},
	}
	for _, tc := range rawTests {
		t.Run("raw "+tc.name, func(t *testing.T) {
			if out, err := DER(c, tc.rs); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DER = %x, %v; want ErrMalformed", out, err)
			}
		})
	}
	derTests := []struct {
		name string
		der  []byte
	}{
		{"empty", nil},
		{"trailing bytes", append(bytes.Clone(goodDER), 0)},
		{"trailing byte inside the sequence", []byte{0x30, 7, 2, 1, 1, 2, 1, 1, 0}},
		{"r negative (high bit without a zero)", der([]byte{0x80, 1}, []byte{1})},
		{"s negative", der([]byte{1}, []byte{0xff})},
		{"r zero", der([]byte{0}, []byte{1})},
		{"s zero", der([]byte{1}, []byte{0})},
		{"r not minimal", der([]byte{0, 1}, []byte{1})},
		{"r empty", der([]byte{}, []byte{1})},
		{"r equal to n", der(append([]byte{0}, nBytes...), []byte{1})},
		{"s longer than n", der([]byte{1}, append([]byte{1}, nBytes...))},
		{"three integers", append([]byte{0x30, 9}, 2, 1, 1, 2, 1, 1, 2, 1, 1)},
		{"one integer", []byte{0x30, 3, 2, 1, 1}},
		{"set, not sequence", append([]byte{0x31}, der([]byte{1}, []byte{1})[1:]...)},
		{"octet string for r", []byte{0x30, 6, 4, 1, 1, 2, 1, 1}},
		{"long-form length (BER)", append([]byte{0x30, 0x81, 6}, der([]byte{1}, []byte{1})[2:]...)},
		{"indefinite length", append(append([]byte{0x30, 0x80}, der([]byte{1}, []byte{1})[2:]...), 0, 0)},
		{"sequence longer than the input", goodDER[:len(goodDER)-1]},
	}
	for _, tc := range derTests {
		t.Run("der "+tc.name, func(t *testing.T) {
			if out, err := Raw(c, tc.der); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Raw(%x) = %x, %v; want ErrMalformed", tc.der, out, err)
			}
		})
	}
}

// FuzzRaw parses any bytes as a DER signature on P-256: what it accepts is
// what crypto/ecdsa's encoding rules accept, and re-encodes to the same
// bytes.
func FuzzRaw(f *testing.F) {
	c := elliptic.P256()
	priv, _ := ecdsa.GenerateKey(c, rand.Reader)
	d := sha256.Sum256(nil)
	sig, _ := ecdsa.SignASN1(rand.Reader, priv, d[:])
	f.Add(sig)
	f.Add(append(bytes.Clone(sig), 0))
	f.Add([]byte{0x30, 6, 2, 1, 1, 2, 1, 1})
	f.Add([]byte{0x30, 6, 2, 1, 0x80, 2, 1, 1})
	f.Add([]byte{0x30, 7, 2, 2, 0, 1, 2, 1, 1})
	f.Fuzz(func(t *testing.T, der []byte) {
		rs, err := Raw(c, der)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		back, err := DER(c, rs)
		if err != nil || !bytes.Equal(back, der) {
			t.Fatalf("DER(Raw(%x)) = %x, %v", der, back, err)
		}
		var v struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) != 0 || v.R.Sign() <= 0 || v.S.Sign() <= 0 {
			t.Fatalf("Raw accepted %x, which encoding/asn1 reads as %v, %v (rest %x)", der, v, err, rest)
		}
	})
}

// FuzzDER encodes any r‖s: it fails exactly when a half is zero or not
// below the order, and otherwise gives what encoding/asn1 gives.
func FuzzDER(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add(bytes.Repeat([]byte{0x80}, 64))
	f.Add(append(make([]byte, 63), 1))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add([]byte{1, 2, 3})
	c := elliptic.P256()
	n := c.Params().N
	f.Fuzz(func(t *testing.T, rs []byte) {
		got, err := DER(c, rs)
		if len(rs) != 64 {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%d bytes: %v", len(rs), err)
			}
			return
		}
		r, s := new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])
		ok := r.Sign() > 0 && s.Sign() > 0 && r.Cmp(n) < 0 && s.Cmp(n) < 0
		if !ok {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DER(%x) = %x, %v; want ErrMalformed", rs, got, err)
			}
			return
		}
		want, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("DER(%x) = %x, %v; want %x", rs, got, err, want)
		}
	})
}
