package cipher_test

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// BenchmarkGCMSeal compares AES-128-GCM Seal over the soft engine (default
// options) with crypto/cipher direct.
func BenchmarkGCMSeal(b *testing.B) {
	raw := make([]byte, 16)
	eng := newSoft(b, soft.Options{})
	key, err := eng.ImportKey(raw)
	if err != nil {
		b.Fatal(err)
	}
	ours, err := ocipher.NewGCM(key)
	if err != nil {
		b.Fatal(err)
	}
	blk, _ := aes.NewCipher(raw)
	std, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	for _, n := range []int{64, 16 << 10} {
		pt := make([]byte, n)
		dst := make([]byte, 0, n+16)
		for _, c := range []struct {
			name string
			a    cipher.AEAD
		}{{"stdlib", std}, {"soft", ours}} {
			b.Run(fmt.Sprintf("%s/%dB", c.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					c.a.Seal(dst[:0], nonce, pt, nil)
				}
			})
		}
	}
}
