package signer_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

// The blocking path over soft against the standard library direct; compare
// allocs/op to see what the adapter adds.
func BenchmarkSign(b *testing.B) {
	e, err := soft.New(soft.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	digest := sha256.Sum256([]byte("bench"))
	msg := []byte("bench")
	p256, ed := keyP256(), keyEd()
	k256, _ := e.ImportKey(p256)
	ked, _ := e.ImportKey(ed)
	s256 := must(newSignerB(k256))
	sed := must(newSignerB(ked))
	b.Run("ECDSA-P256/direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, p256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ECDSA-P256/signer", func(b *testing.B) {
		for b.Loop() {
			if _, err := s256.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Ed25519/direct", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(ed, msg)
		}
	})
	b.Run("Ed25519/signer", func(b *testing.B) {
		for b.Loop() {
			if _, err := sed.Sign(rand.Reader, msg, crypto.Hash(0)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func newSignerB(k *offload.Key) (*signer.Signer, error) { return signer.New(k) }
