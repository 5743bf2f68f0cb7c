//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/signer"
)

// TestHasherOnToken streams hashes through hasher/ on the token, end to
// end: hasher uses the engine's hash sessions.
func TestHasherOnToken(t *testing.T) {
	e := openEngine(t, 2)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	msg := randBytes(rng, 200<<10+13)
	for _, h := range []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			d, err := hasher.New(e, h)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			for off := 0; off < len(msg); {
				n := min(len(msg)-off, rng.IntN(50000))
				if _, err := d.WriteContext(ctx, msg[off:off+n]); err != nil {
					t.Fatal(err)
				}
				off += n
			}
			if _, err := d.MarshalBinary(); !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("MarshalBinary: %v", err)
			}
			sum, err := d.SumContext(ctx, nil)
			if err != nil || !bytes.Equal(sum, hashOf(h, msg)) {
				t.Fatalf("%x, %v", sum, err)
			}
			if _, err := d.Write([]byte("x")); !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("Write after Sum: %v", err)
			}
			d.Reset()
			io.Copy(d, bytes.NewReader(msg[:1000]))
			if got := d.Sum(nil); !bytes.Equal(got, hashOf(h, msg[:1000])) {
				t.Fatalf("after Reset: %x", got)
			}
		})
	}
	t.Run("closed-half-way", func(t *testing.T) {
		d, err := hasher.New(e, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		d.Write(msg[:100<<10])
		d.Close()
		waitIdle(t, e)
	})
	t.Run("digest-and-sign-stream", func(t *testing.T) {
		sum, err := hasher.Digest(ctx, e, crypto.SHA512, bytes.NewReader(msg)).Wait(ctx)
		if err != nil || !bytes.Equal(sum, hashOf(crypto.SHA512, msg)) {
			t.Fatalf("Digest: %x, %v", sum, err)
		}
		k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
		if err != nil {
			t.Fatal(err)
		}
		s, err := signer.New(k)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := hasher.SignStream(ctx, s, bytes.NewReader(msg), crypto.SHA256).Wait(ctx)
		if err != nil {
			t.Fatalf("SignStream: %v", err)
		}
		if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), hashOf(crypto.SHA256, msg), sig) {
			t.Fatal("SignStream's signature does not verify")
		}
		waitIdle(t, e)
	})
}
