package cipher_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/internal/softhsm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/pkcs11"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// importer is an engine that takes AES key bytes.
type importer interface {
	offload.Engine
	offload.Importer
}

// engines are every engine that claims AES-GCM, each made for one test with
// a payload cap of 1 KiB, so that "at the cap" and "over it" are cheap.
var engines = []struct {
	name string
	open func(t *testing.T) importer
}{
	{"soft", func(t *testing.T) importer { return newSoft(t, soft.Options{MaxInline: 1024}) }},
	{"qat", func(t *testing.T) importer {
		e, err := qat.Open(context.Background(), qat.Config{MaxInline: 1024})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}},
	{"pkcs11 (SoftHSM2)", func(t *testing.T) importer { return openToken(t, 1024) }},
}

// openToken opens the pkcs11 engine on a SoftHSM2 token of t's own.
func openToken(t *testing.T, maxInline int) *pkcs11.Engine {
	tk := softhsm.Token{Label: "cipher", PIN: "1234"}
	softhsm.Start(t, tk)
	e, err := pkcs11.Open(context.Background(), pkcs11.Config{Module: softhsm.Module, TokenLabel: tk.Label, MaxInline: maxInline,
		PIN: func(context.Context) ([]byte, error) { return []byte(tk.PIN), nil }})
	return devicetest.Opened(t, e, err)
}

// TestGCMEverySize: Seal and Open match crypto/cipher at 0 bytes, one byte,
// around the engine's payload cap (where pkcs11 starts streaming), and at 16
// MiB, on every engine, up to what the engine takes in one message
// (MaxPlaintext; past it see TestGCMOverDeviceLimit); a tampered message of
// each size fails with ErrOpen, releases no plaintext and leaves dst alone.
func TestGCMEverySize(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789abcdef")
	blk, _ := aes.NewCipher(raw)
	std, _ := cipher.NewGCM(blk)
	nonce, aad := []byte("twelve bytes"), []byte("header")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			eng := e.open(t)
			k, err := eng.ImportKey(raw)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ocipher.NewGCM(k)
			if err != nil {
				t.Fatal(err)
			}
			cap := eng.Info().MaxInline
			for _, n := range []int{0, 1, cap - 16, cap - 15, cap, cap + 1, 16 << 20} {
				if n > g.MaxPlaintext() {
					continue
				}
				t.Run(fmt.Sprint(n), func(t *testing.T) {
					pt := bytes.Repeat([]byte{byte(n), 0x5a, 0xc3}, n/3+1)[:n]
					want := std.Seal([]byte("dst:"), nonce, pt, aad)
					got := g.Seal([]byte("dst:"), nonce, pt, aad)
					if !bytes.Equal(got, want) {
						t.Fatalf("Seal of %d bytes differs from crypto/cipher's", n)
					}
					ct := want[4:]
					opened, err := g.Open([]byte("dst:"), nonce, ct, aad)
					if err != nil || !bytes.Equal(opened, append([]byte("dst:"), pt...)) {
						t.Fatalf("Open of %d bytes: %v", len(ct), err)
					}
					if opened, err := g.OpenContext(context.Background(), nil, nonce, ct, aad); err != nil || !bytes.Equal(opened, pt) {
						t.Fatalf("OpenContext of %d bytes: %v", len(ct), err)
					}
					spots := []int{0, len(ct) / 2, len(ct) - 1} // ciphertext, middle, tag
					if n > 1<<20 {
						spots = spots[1:2] // the middle: each Open of 16 MiB is thousands of parts on pkcs11
					}
					for _, at := range spots {
						bad := bytes.Clone(ct)
						bad[at] ^= 1
						dst := []byte("keep")
						v, err := g.Open(dst, nonce, bad, aad)
						if v != nil || err != ocipher.ErrOpen || string(dst) != "keep" {
							t.Fatalf("Open of %d bytes tampered at %d = %d bytes, %v; want none and ErrOpen", len(bad), at, len(v), err)
						}
					}
				})
			}
		})
	}
}
