//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

// TestLostResultReleased holds the worker after the token has answered until
// the caller's context has ended and resolved the future, then lets it
// deliver: a secret result (random bytes, plaintext) must be zeroed, and
// Stats must count the failure the caller saw, not the token's success.
func TestLostResultReleased(t *testing.T) {
	e := openEngine(t, 1)
	raw := make([]byte, 16)
	rand.Read(raw)
	k := knownAESKey(t, e, raw)
	iv := make([]byte, 16)
	rand.Read(iv)
	input := make([]byte, 64)
	rand.Read(input)

	var hold atomic.Bool
	atWork, let := make(chan struct{}), make(chan struct{})
	released := make(chan []byte, 1)
	e.workHook = func() {
		if hold.Load() {
			atWork <- struct{}{}
			<-let
		}
	}
	e.releaseHook = func(v any) {
		b, _ := v.([]byte)
		released <- bytes.Clone(b)
	}

	cases := []struct {
		name    string
		op      offload.Op
		call    func(ctx context.Context) *offload.Future[[]byte]
		secret  bool // the lost result is released
		wantLen int
	}{
		{"random", offload.OpRandom, func(ctx context.Context) *offload.Future[[]byte] {
			return e.Random(ctx, &offload.RandomRequest{N: 32})
		}, true, 32},
		{"aes-ctr-decrypt", offload.OpCipher, func(ctx context.Context) *offload.Future[[]byte] {
			return e.Cipher(ctx, &offload.CipherRequest{Key: k, Mode: offload.ModeCTR, Decrypt: true, IV: iv, Input: input})
		}, true, len(input)},
		{"aes-ctr-encrypt", offload.OpCipher, func(ctx context.Context) *offload.Future[[]byte] {
			return e.Cipher(ctx, &offload.CipherRequest{Key: k, Mode: offload.ModeCTR, IV: iv, Input: input})
		}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.Stats().Op(c.op)
			hold.Store(true)
			ctx, cancel := context.WithCancel(context.Background())
			f := c.call(ctx)
			<-atWork // the token has answered; the result is not delivered yet
			cancel()
			_, err := f.Wait(context.Background())
			hold.Store(false)
			let <- struct{}{}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call: %v", err)
			}
			// A job queued behind it on the one worker runs only once the
			// cancelled one has been delivered (or released).
			if _, err := submit(e, context.Background(), offload.OpSign, false, offload.Call{}, func(*worker) (struct{}, error) {
				return struct{}{}, nil
			}).Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case b := <-released:
				if !c.secret {
					t.Fatalf("non-secret result released: %x", b)
				}
				if len(b) != c.wantLen || !bytes.Equal(b, make([]byte, c.wantLen)) {
					t.Fatalf("released result %x, want %d zero bytes", b, c.wantLen)
				}
			default:
				if c.secret {
					t.Fatal("lost result not released")
				}
			}
			after := e.Stats().Op(c.op)
			if after.Failed != before.Failed+1 || after.Completed != before.Completed || after.InFlight != 0 {
				t.Fatalf("stats before %+v after %+v: want one more failure, no completion", before, after)
			}
		})
	}
}
