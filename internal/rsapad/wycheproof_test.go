package rsapad

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"os"
	"testing"

	"github.com/offcrypt/offcrypt/internal/wycheproof"
)

// The Wycheproof files in testdata/ are copied from the C2SP wycheproof
// repository (testvectors_v1/, Apache-2.0, see testdata/LICENSE).

type wycheKey struct {
	Modulus         wycheproof.Hex `json:"modulus"`
	PublicExponent  wycheproof.Hex `json:"publicExponent"`
	PrivateExponent wycheproof.Hex `json:"privateExponent"`
}

func (k wycheKey) private() *rsa.PrivateKey {
	n := new(big.Int).SetBytes(k.Modulus)
	return &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n, E: int(new(big.Int).SetBytes(k.PublicExponent).Int64())},
		D:         new(big.Int).SetBytes(k.PrivateExponent),
	}
}

type wycheFile struct {
	Groups []struct {
		SHA        string            `json:"sha"`
		MGFSHA     string            `json:"mgfSha"`
		SLen       int               `json:"sLen"`
		KeySize    int               `json:"keySize"`
		PrivateKey wycheKey          `json:"privateKey"`
		PublicKey  wycheKey          `json:"publicKey"`
		Tests      []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

var hashNames = map[string]crypto.Hash{
	"SHA-1": crypto.SHA1, "SHA-224": crypto.SHA224, "SHA-256": crypto.SHA256,
	"SHA-384": crypto.SHA384, "SHA-512": crypto.SHA512,
	"SHA-512/224": crypto.SHA512_224, "SHA-512/256": crypto.SHA512_256,
}

func loadWyche(t *testing.T, name string) wycheFile {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f wycheFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no test groups", name)
	}
	return f
}

func hashNamed(t *testing.T, name string) crypto.Hash {
	t.Helper()
	h, ok := hashNames[name]
	if !ok {
		t.Fatalf("hash %q", name)
	}
	return h
}

// TestWycheproofPKCS1v15Sign: the deterministic signatures of the
// encoding made here equal the vectors' (valid and acceptable ones; the
// file has no invalid signature to produce).
func TestWycheproofPKCS1v15Sign(t *testing.T) {
	f := loadWyche(t, "rsa_pkcs1_2048_sig_gen_test.json")
	n := 0
	for _, g := range f.Groups {
		priv, h := g.PrivateKey.private(), hashNamed(t, g.SHA)
		for _, tc := range g.Tests {
			em, err := EncodePKCS1v15(priv.Size(), h, digestOf(h, tc.Msg))
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			if got := rawSign(priv, em); !bytes.Equal(got, tc.Sig) {
				t.Errorf("tc %d (%s): signature differs from the vector's", tc.TcID, tc.Result)
			}
			n++
		}
	}
	t.Logf("%d signatures", n)
}

// TestWycheproofPSS: for each valid signature whose MGF1 hash is its hash
// (the only PSS that EncodePSS makes), the encoding made here with the
// signature's own salt is the encoding the vector's signature carries.
func TestWycheproofPSS(t *testing.T) {
	f := loadWyche(t, "rsa_pss_misc_test.json")
	n := 0
	for _, g := range f.Groups {
		if g.MGFSHA != g.SHA {
			continue
		}
		h := hashNamed(t, g.SHA)
		pub := g.PublicKey.private().PublicKey
		bits := pub.N.BitLen()
		for _, tc := range g.Tests {
			if tc.Result != "valid" {
				continue
			}
			s := new(big.Int).SetBytes(tc.Sig)
			em := s.Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, pub.Size()))
			salt := pssSalt(em, bits, h, g.SLen)
			got, err := EncodePSS(bytes.NewReader(salt), bits, h, digestOf(h, tc.Msg), g.SLen)
			if err != nil || !bytes.Equal(got, em) {
				t.Errorf("tc %d (%v, salt %d): encoding differs from the vector's (%v)", tc.TcID, h, g.SLen, err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no vector ran")
	}
	t.Logf("%d signatures", n)
}

// pssSalt reads the salt out of a PSS encoding em (left-padded to the
// modulus' size), unmasking DB with MGF1 of H.
func pssSalt(em []byte, bits int, h crypto.Hash, sLen int) []byte {
	emLen := (bits - 1 + 7) / 8
	em = bytes.Clone(em[len(em)-emLen:])
	db, hv := em[:emLen-h.Size()-1], em[emLen-h.Size()-1:emLen-1]
	mgf1XOR(db, h.New(), hv)
	return db[len(db)-sLen:]
}

// TestWycheproofOAEP decrypts raw and decodes here: valid vectors give
// their message, invalid ones the bare rsa.ErrDecryption (or are refused
// before unpadding, as an engine does with a ciphertext not below the
// modulus).
func TestWycheproofOAEP(t *testing.T) {
	f := loadWyche(t, "rsa_oaep_2048_sha256_mgf1sha256_test.json")
	for _, g := range f.Groups {
		priv, h, mgf := g.PrivateKey.private(), hashNamed(t, g.SHA), hashNamed(t, g.MGFSHA)
		for _, tc := range g.Tests {
			checkDecode(t, priv, tc, func(em []byte) ([]byte, error) { return DecodeOAEP(em, h, mgf, tc.Label) })
		}
	}
}

// TestWycheproofPKCS1v15Decrypt is the same for PKCS #1 v1.5, and checks
// the session-key decoding against crypto/rsa's on every vector.
func TestWycheproofPKCS1v15Decrypt(t *testing.T) {
	f := loadWyche(t, "rsa_pkcs1_2048_test.json")
	for _, g := range f.Groups {
		priv := g.PrivateKey.private()
		for _, tc := range g.Tests {
			checkDecode(t, priv, tc, DecodePKCS1v15)
			if len(tc.CT) == priv.Size() {
				checkSessionKey(t, priv, tc.CT, len(tc.Msg))
				checkSessionKey(t, priv, tc.CT, 16)
			}
		}
	}
}

// checkDecode decrypts tc's ciphertext raw and decodes it: a valid vector
// gives its message, any other the bare rsa.ErrDecryption.
func checkDecode(t *testing.T, priv *rsa.PrivateKey, tc wycheproof.Test, decode func([]byte) ([]byte, error)) {
	t.Helper()
	em, ok := rawDecrypt(priv, tc.CT)
	var (
		got []byte
		err = rsa.ErrDecryption
	)
	if ok {
		got, err = decode(em)
	}
	switch tc.Result {
	case "valid":
		if err != nil || !bytes.Equal(got, tc.Msg) {
			t.Errorf("tc %d: %x, %v; want %x", tc.TcID, got, err, []byte(tc.Msg))
		}
	default:
		if err != rsa.ErrDecryption || got != nil {
			t.Errorf("tc %d (%s): %x, %v; want the bare rsa.ErrDecryption", tc.TcID, tc.Result, got, err)
		}
	}
}
