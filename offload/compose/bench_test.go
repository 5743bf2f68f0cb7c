package compose_test

import (
	"context"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/compose"
)

// BenchmarkSmallGCM: a 64-byte GCM seal on the software engine alone and
// through compose(qat, soft), where it stays in software.
func BenchmarkSmallGCM(b *testing.B) {
	t := &testing.T{}
	sw := openSoft(t)
	both, err := compose.New(openQAT(t), openSoft(t), compose.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sw.Close()
	defer both.Close()
	for _, eng := range []offload.Engine{sw, both} {
		key, err := eng.(offload.Importer).ImportKey(make([]byte, 16))
		if err != nil {
			b.Fatal(err)
		}
		req := &offload.CipherRequest{Call: offload.Call{Inline: true}, Key: key, Mode: offload.ModeGCM,
			IV: make([]byte, 12), Input: make([]byte, 64), Out: make([]byte, 0, 80)}
		ctx := context.Background()
		b.Run(eng.Info().Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Cipher(ctx, req).Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
