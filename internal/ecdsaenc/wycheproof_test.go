package ecdsaenc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/offcrypt/offcrypt/internal/wycheproof"
)

// testdata/ecdsa_secp256r1_sha256_test.json is copied from the C2SP
// wycheproof repository (testvectors_v1/, Apache-2.0, see testdata/LICENSE).

// encodingFlags mark vectors whose signature is not minimal DER of two
// positive integers: Raw must refuse every one of them.
var encodingFlags = []string{"BerEncodedSignature", "InvalidEncoding", "MissingZero", "InvalidTypesInSignature"}

// TestWycheproof parses every signature of the P-256 verification vectors:
// valid ones parse and re-encode to the same bytes, badly encoded ones are
// refused, and whatever parses verifies with crypto/ecdsa exactly when the
// vector says it is valid.
func TestWycheproof(t *testing.T) {
	b, err := os.ReadFile("testdata/ecdsa_secp256r1_sha256_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			PublicKey struct {
				Uncompressed wycheproof.Hex `json:"uncompressed"`
			} `json:"publicKey"`
			Tests []wycheproof.Test `json:"tests"`
		} `json:"testGroups"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	c := elliptic.P256()
	var valid, refused int
	for _, g := range file.Groups {
		pub, err := ecdsa.ParseUncompressedPublicKey(c, g.PublicKey.Uncompressed)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range g.Tests {
			badEncoding := slices.ContainsFunc(tc.Flags, func(f string) bool { return slices.Contains(encodingFlags, f) })
			rs, err := Raw(c, tc.Sig)
			switch {
			case err != nil && tc.Result != "invalid":
				t.Errorf("tc %d (%s, %v): %v", tc.TcID, tc.Result, tc.Flags, err)
				continue
			case err != nil:
				refused++ // badly encoded, or r or s out of range
				continue
			case badEncoding:
				t.Errorf("tc %d (%v): Raw accepted %x", tc.TcID, tc.Flags, []byte(tc.Sig))
				continue
			}
			back, err := DER(c, rs)
			if err != nil || !bytes.Equal(back, tc.Sig) {
				t.Errorf("tc %d: DER(Raw(sig)) = %x, %v", tc.TcID, back, err)
			}
			d := sha256.Sum256(tc.Msg)
			if ok := ecdsa.VerifyASN1(pub, d[:], back); ok != (tc.Result == "valid") {
				t.Errorf("tc %d (%s): crypto/ecdsa says %v", tc.TcID, tc.Result, ok)
			}
			if tc.Result == "valid" {
				valid++
			}
		}
	}
	if valid == 0 || refused == 0 {
		t.Fatalf("%d valid, %d refused: the vectors did not run", valid, refused)
	}
	t.Logf("%d valid signatures round-tripped, %d refused", valid, refused)
}
