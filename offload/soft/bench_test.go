package soft

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

// BenchmarkSeal measures AES-128-GCM Seal through the engine (a blocking
// request, as the cipher adapter sends) against crypto/cipher direct, with
// one caller and with one caller per CPU (-cpu sets how many): the
// difference per op at 64 bytes is the engine's own cost per request. Each
// caller seals into its own buffer, kept off its neighbours' cache lines,
// so neither side allocates the ciphertext.
func BenchmarkSeal(b *testing.B) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	raw := make([]byte, 16)
	key, err := e.ImportKey(raw)
	if err != nil {
		b.Fatal(err)
	}
	blk, _ := aes.NewCipher(raw)
	std, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	ctx := context.Background()
	sides := []struct {
		name string
		seal func(dst, pt []byte) error
	}{
		{"stdlib", func(dst, pt []byte) error { std.Seal(dst[:0], nonce, pt, nil); return nil }},
		{"engine", func(dst, pt []byte) error {
			req := offload.CipherRequest{Call: offload.Call{Inline: true}, Key: key, Mode: offload.ModeGCM, IV: nonce, Input: pt, Out: dst}
			_, err := e.Cipher(ctx, &req).Wait(ctx)
			return err
		}},
	}
	for _, n := range []int{64, 16 << 10} {
		for _, side := range sides {
			for _, parallel := range []bool{false, true} {
				name := fmt.Sprintf("%s/%dB", side.name, n)
				if parallel {
					name += "/parallel"
				}
				b.Run(name, func(b *testing.B) {
					b.SetBytes(int64(n))
					b.ReportAllocs()
					if !parallel {
						pt, dst := isolated(n), isolated(n+16)
						for b.Loop() {
							if err := side.seal(dst, pt); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					b.RunParallel(func(pb *testing.PB) {
						pt, dst := isolated(n), isolated(n+16)
						for pb.Next() {
							if err := side.seal(dst, pt); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}

// isolated returns n bytes that share no cache line with other memory.
func isolated(n int) []byte {
	const pad = 128
	buf := make([]byte, pad+n+pad)
	return buf[pad : pad+n : pad+n]
}
