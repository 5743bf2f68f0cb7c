package pkcs11

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"math/big"
	"testing"
)

// rawDecrypt is textbook RSA with the standard library's key, standing in
// for a token's CKM_RSA_X_509.
func rawDecrypt(priv *rsa.PrivateKey, ct []byte) []byte {
	m := new(big.Int).Exp(new(big.Int).SetBytes(ct), priv.D, priv.N)
	return m.FillBytes(make([]byte, priv.Size()))
}

func TestOAEPDecode(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("session key")
	for _, tt := range []struct {
		name string
		opts *rsa.OAEPOptions
	}{
		{"sha256", &rsa.OAEPOptions{Hash: crypto.SHA256}},
		{"sha256-label", &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}},
		{"sha512-mgf-sha1", &rsa.OAEPOptions{Hash: crypto.SHA512, MGFHash: crypto.SHA1, Label: []byte("x")}},
		{"sha1-empty-message", &rsa.OAEPOptions{Hash: crypto.SHA1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := msg
			if tt.name == "sha1-empty-message" {
				in = []byte{}
			}
			ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, &priv.PublicKey, in, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			mgf := tt.opts.MGFHash
			if mgf == 0 {
				mgf = tt.opts.Hash
			}
			em := rawDecrypt(priv, ct)
			got, err := oaepDecode(em, tt.opts.Hash.New(), mgf.New(), tt.opts.Label)
			if err != nil || string(got) != string(in) {
				t.Fatalf("oaepDecode = %q, %v", got, err)
			}
			if _, err := oaepDecode(em, tt.opts.Hash.New(), mgf.New(), append(tt.opts.Label, 'z')); !errors.Is(err, rsa.ErrDecryption) {
				t.Fatalf("wrong label: %v", err)
			}
			for _, i := range []int{0, 1, 40, len(em) - 1} {
				bad := append([]byte(nil), em...)
				bad[i] ^= 0x80
				if out, err := oaepDecode(bad, tt.opts.Hash.New(), mgf.New(), tt.opts.Label); !errors.Is(err, rsa.ErrDecryption) {
					t.Fatalf("byte %d flipped: %q, %v", i, out, err)
				}
			}
			if _, err := oaepDecode(em[:20], tt.opts.Hash.New(), mgf.New(), nil); !errors.Is(err, rsa.ErrDecryption) {
				t.Fatalf("short input: %v", err)
			}
		})
	}
}

// FuzzOAEPDecode feeds arbitrary blocks to the unpadding: it must never
// panic, and anything it accepts must fit the block.
func FuzzOAEPDecode(f *testing.F) {
	f.Add(make([]byte, 256), []byte("label"))
	f.Add(append(make([]byte, 255), 1), []byte{})
	f.Fuzz(func(t *testing.T, em, label []byte) {
		h := crypto.SHA256
		out, err := oaepDecode(em, h.New(), h.New(), label)
		if err != nil {
			if !errors.Is(err, rsa.ErrDecryption) || out != nil {
				t.Fatalf("%v, %x", err, out)
			}
			return
		}
		if len(out) > len(em)-2*h.Size()-2 {
			t.Fatalf("%d bytes out of a %d-byte block", len(out), len(em))
		}
	})
}
