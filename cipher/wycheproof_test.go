package cipher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/internal/wycheproof"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// Wycheproof's AEAD and symmetric-cipher vectors (testdata/, Apache 2.0,
// see testdata/LICENSE).
type wycheproofFile struct {
	Algorithm string `json:"algorithm"`
	Groups    []struct {
		IVSize  int               `json:"ivSize"`
		KeySize int               `json:"keySize"`
		TagSize int               `json:"tagSize"`
		Tests   []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

func loadWycheproof(t *testing.T, name string) *wycheproofFile {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f wycheproofFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// TestWycheproofGCM runs every AES-GCM vector. Valid ones must seal to the
// expected ciphertext and tag and open back; invalid ones must fail to open
// with ErrOpen, or, for an empty nonce, be refused by NewGCMWithNonceSize.
func TestWycheproofGCM(t *testing.T) {
	f := loadWycheproof(t, "aes_gcm_test.json")
	eng := newSoft(t, soft.Options{})
	ctx := context.Background()
	var valid, invalid int
	for _, g := range f.Groups {
		if g.TagSize != 128 {
			t.Fatalf("group with a %d-bit tag: this package does 16-byte tags only", g.TagSize)
		}
		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("%d", tc.TcID), func(t *testing.T) {
				key, err := eng.ImportKey([]byte(tc.Key))
				if err != nil {
					t.Fatal(err)
				}
				a, err := ocipher.NewGCMWithNonceSize(key, len(tc.IV))
				if len(tc.IV) == 0 {
					// An empty nonce is invalid by construction.
					if err == nil || tc.Result != "invalid" || !errors.Is(err, offload.ErrInvalid) {
						t.Fatalf("empty nonce: NewGCMWithNonceSize = %v (result %s)", err, tc.Result)
					}
					invalid++
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				sealed := append(append([]byte(nil), tc.CT...), tc.Tag...)
				pt, err := a.Open(nil, tc.IV, sealed, tc.AAD)
				switch tc.Result {
				case "valid", "acceptable":
					valid++
					if err != nil || !bytes.Equal(pt, tc.Msg) {
						t.Fatalf("%s: Open = %x, %v", tc.Comment, pt, err)
					}
					if got := a.Seal(nil, tc.IV, tc.Msg, tc.AAD); !bytes.Equal(got, sealed) {
						t.Fatalf("%s: Seal = %x, want %x", tc.Comment, got, sealed)
					}
					got, err := a.SealContext(ctx, []byte("dst"), tc.IV, tc.Msg, tc.AAD)
					if err != nil || !bytes.Equal(got, append([]byte("dst"), sealed...)) {
						t.Fatalf("%s: SealContext = %x, %v", tc.Comment, got, err)
					}
				default:
					invalid++
					if err != ocipher.ErrOpen || pt != nil {
						t.Fatalf("%s: Open = %x, %v; want ErrOpen", tc.Comment, pt, err)
					}
				}
			})
		}
	}
	t.Logf("%d valid and %d invalid vectors", valid, invalid)
}

// TestWycheproofCBC runs every AES-CBC-PKCS5 vector; the padding is added
// and checked here, since CBC itself has none.
func TestWycheproofCBC(t *testing.T) {
	f := loadWycheproof(t, "aes_cbc_pkcs5_test.json")
	eng := newSoft(t, soft.Options{MaxInline: 256}) // several requests for the longer vectors
	ctx := context.Background()
	for _, g := range f.Groups {
		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("%d", tc.TcID), func(t *testing.T) {
				key, err := eng.ImportKey([]byte(tc.Key))
				if err != nil {
					t.Fatal(err)
				}
				dec, err := ocipher.NewCBCDecrypter(key, tc.IV)
				if err != nil {
					t.Fatal(err)
				}
				out := make([]byte, len(tc.CT))
				err = dec.CryptBlocksContext(ctx, out, tc.CT)
				var msg []byte
				if err == nil {
					msg, err = unpad(out)
				}
				if tc.Result == "invalid" {
					if err == nil {
						t.Fatalf("%s: decrypted to %x", tc.Comment, msg)
					}
					return
				}
				if err != nil || !bytes.Equal(msg, tc.Msg) {
					t.Fatalf("%s: decrypt = %x, %v", tc.Comment, msg, err)
				}
				enc, err := ocipher.NewCBCEncrypter(key, tc.IV)
				if err != nil {
					t.Fatal(err)
				}
				ct := pad(tc.Msg)
				enc.CryptBlocks(ct, ct)
				if !bytes.Equal(ct, tc.CT) {
					t.Fatalf("%s: encrypt = %x, want %x", tc.Comment, ct, tc.CT)
				}
			})
		}
	}
}

func pad(m []byte) []byte {
	n := 16 - len(m)%16
	return append(append([]byte(nil), m...), bytes.Repeat([]byte{byte(n)}, n)...)
}

var errPadding = errors.New("bad padding")

func unpad(b []byte) ([]byte, error) {
	if len(b) == 0 || len(b)%16 != 0 {
		return nil, errPadding
	}
	n := int(b[len(b)-1])
	if n == 0 || n > 16 {
		return nil, errPadding
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, errPadding
		}
	}
	return b[:len(b)-n], nil
}
