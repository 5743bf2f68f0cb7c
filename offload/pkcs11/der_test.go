//go:build cgo

package pkcs11

import (
	"bytes"
	"encoding/asn1"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestECDSADER checks the hand-written encoder against encoding/asn1 over
// random and edge-case values of every curve size.
func TestECDSADER(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{32, 48, 66} {
		cases := [][]byte{}
		for range 2000 {
			raw := make([]byte, 2*n)
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			// Leading zeros and high bits, both halves.
			switch rng.IntN(4) {
			case 0:
				clear(raw[:rng.IntN(n)])
			case 1:
				clear(raw[n : n+rng.IntN(n)])
			case 2:
				raw[0] |= 0x80
				raw[n] |= 0x80
			}
			cases = append(cases, raw)
		}
		for _, raw := range cases {
			got, err := ecdsaDER(raw)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
			if !bytes.Equal(got, want) {
				t.Fatalf("raw %x:\n got %x\nwant %x", raw, got, want)
			}
		}
	}
	for _, raw := range [][]byte{nil, {1}, make([]byte, 64), append(make([]byte, 32), bytes.Repeat([]byte{1}, 32)...), make([]byte, 140)} {
		if _, err := ecdsaDER(raw); err == nil {
			t.Fatalf("ecdsaDER(%x) did not fail", raw)
		}
	}
}
