//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
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

// TestHasherThroughInject hashes on the token through inject.Wrap: the
// wrapper keeps the engine's hash sessions, so hasher uses them (a wrapper
// that hid them would make hasher send stateless requests the token
// refuses), and the wrapper's latency applies to every session request.
func TestHasherThroughInject(t *testing.T) {
	e := openEngine(t, 2)
	w := inject.Wrap(e, inject.Options{Latency: 50 * time.Microsecond})
	t.Cleanup(func() { w.Close() })
	if _, ok := w.(offload.HashSessioner); !ok {
		t.Fatal("inject.Wrap hides the engine's hash sessions")
	}
	msg := randBytes(rand.New(rand.NewPCG(7, 8)), 3*e.Info().MaxInline+5)
	d, err := hasher.New(w, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(msg); err != nil {
		t.Fatal(err)
	}
	sum, err := d.SumContext(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(msg); !bytes.Equal(sum, want[:]) {
		t.Fatalf("sum %x, want %x", sum, want)
	}
}
