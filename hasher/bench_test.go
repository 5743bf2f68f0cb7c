package hasher_test

import (
	"crypto"
	"crypto/sha256"
	"hash"
	"testing"

	"github.com/offcrypt/offcrypt/offload/soft"
)

// benchHash writes 1 MiB per iteration and takes the digest.
func benchHash(b *testing.B, h hash.Hash) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Write(buf)
		h.Sum(nil)
	}
}

func BenchmarkSHA256(b *testing.B) {
	b.Run("stdlib/1MiB", func(b *testing.B) { benchHash(b, sha256.New()) })
	b.Run("soft/default/1MiB", func(b *testing.B) {
		benchHash(b, newHash(b, newSoft(b, soft.Options{}), crypto.SHA256))
	})
	// 1,280 bytes per message: 20 SHA-256 blocks of payload. The figure
	// to read is ns/op divided by the messages per MiB (820 for 1 MiB).
	b.Run("soft/inline1280/1MiB", func(b *testing.B) {
		benchHash(b, newHash(b, newSoft(b, soft.Options{MaxInline: 1280}), crypto.SHA256))
	})
	// wolfHSM's 1,280-byte comm buffer less the SHA-256 header: 19 blocks.
	b.Run("soft/inline1216/1MiB", func(b *testing.B) {
		benchHash(b, newHash(b, newSoft(b, soft.Options{MaxInline: 1216}), crypto.SHA256))
	})
}

func BenchmarkSHA512(b *testing.B) {
	b.Run("stdlib/1MiB", func(b *testing.B) { benchHash(b, stdNew(crypto.SHA512)) })
	b.Run("soft/default/1MiB", func(b *testing.B) {
		benchHash(b, newHash(b, newSoft(b, soft.Options{}), crypto.SHA512))
	})
	b.Run("soft/inline1280/1MiB", func(b *testing.B) {
		benchHash(b, newHash(b, newSoft(b, soft.Options{MaxInline: 1280}), crypto.SHA512))
	})
}

// BenchmarkMessage measures one 1,280-byte request: the cost per message.
func BenchmarkMessage(b *testing.B) {
	buf := make([]byte, 1280)
	b.Run("stdlib/1280B", func(b *testing.B) {
		h := sha256.New()
		b.SetBytes(1280)
		for b.Loop() {
			h.Write(buf)
		}
	})
	b.Run("soft/1280B", func(b *testing.B) {
		h := newHash(b, newSoft(b, soft.Options{MaxInline: 1280}), crypto.SHA256)
		b.SetBytes(1280)
		for b.Loop() {
			h.Write(buf)
		}
	})
}
