//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

// A blocking request (Call.Inline) runs on the caller's goroutine when a
// session is free, so its future is resolved when the engine's method
// returns: readied, gated and recovered (and retried once) as on a worker;
// a context that ends while the token works fails the call at the work's
// end and the secret result is zeroed.
func TestInlineCalls(t *testing.T) {
	e := openEngine(t, 2)
	k, err := e.FindKey(context.Background(), "pkcs11:object=ec256")
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("inline"))
	released := make(chan []byte, 1)
	e.releaseHook = func(v any) {
		b, _ := v.([]byte)
		released <- bytes.Clone(b)
	}
	sign := func(ctx context.Context) *offload.Future[[]byte] {
		return e.Sign(ctx, &offload.SignRequest{Call: offload.Call{Inline: true}, Key: k, Digest: digest, Opts: crypto.SHA256})
	}
	for _, tc := range []struct {
		name        string
		under       func(t *testing.T) // what happens underneath the engine first
		cancel      bool               // the caller's context ends while the token works
		wantRetried bool
	}{
		{name: "free session"},
		{name: "context ends in the call", cancel: true},
		{name: "logged out underneath: recovered and retried", under: func(t *testing.T) { logoutUnder(t, e) }, wantRetried: true},
		{name: "sessions closed underneath: recovered and retried", under: func(t *testing.T) {
			if err := e.p.CloseAllSessions(e.curSlot()); err != nil {
				t.Fatal(err)
			}
		}, wantRetried: true},
		// Last: the session that did not serve the call above is lost too, and
		// a later call on it recovers.
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.under != nil {
				tc.under(t)
			}
			before, stats := e.Recovery(), e.Stats()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				e.workHook = cancel
				defer func() { e.workHook = nil }()
				f := e.Random(ctx, &offload.RandomRequest{Call: offload.Call{Inline: true}, N: 32})
				if _, err := f.Poll(); !errors.Is(err, context.Canceled) {
					t.Fatalf("Poll when Random returned: %v, want context.Canceled", err)
				}
				select {
				case b := <-released:
					if !bytes.Equal(b, make([]byte, 32)) {
						t.Fatalf("released result %x, want 32 zero bytes", b)
					}
				default:
					t.Fatal("the result the caller lost was not released")
				}
				if a := e.Stats().Op(offload.OpRandom); a.Failed != stats.Op(offload.OpRandom).Failed+1 || a.InFlight != 0 {
					t.Fatalf("stats before %+v after %+v", stats.Op(offload.OpRandom), a)
				}
				return
			}
			sig, err := sign(ctx).Poll()
			if err != nil {
				t.Fatalf("Poll when Sign returned: %v (ErrNotReady: it went to a worker)", err)
			}
			if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
				t.Fatal("bad signature")
			}
			after := e.Recovery()
			if got := after.Retried > before.Retried; got != tc.wantRetried {
				t.Fatalf("retried: %v, want %v (before %+v after %+v)", got, tc.wantRetried, before, after)
			}
			if a := e.Stats().Op(offload.OpSign); a.Completed != stats.Op(offload.OpSign).Completed+1 || a.InFlight != 0 {
				t.Fatalf("stats before %+v after %+v", stats.Op(offload.OpSign), a)
			}
		})
	}
}

// A blocking request never takes a session pinned by a hash session: with
// the only session pinned, NoWait fails with ErrBusy, and a request that
// waits signs once the hash session is over.
func TestInlineWaitsForPinnedSession(t *testing.T) {
	e := openEngine(t, 1)
	k, err := e.FindKey(context.Background(), "pkcs11:object=ec256")
	if err != nil {
		t.Fatal(err)
	}
	hs, err := e.HashSession(context.Background(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("pinned"))
	f := e.Sign(context.Background(), &offload.SignRequest{Call: offload.Call{Inline: true, NoWait: true}, Key: k, Digest: digest, Opts: crypto.SHA256})
	if _, err := f.Poll(); !errors.Is(err, offload.ErrBusy) {
		t.Fatalf("inline NoWait sign while the only session is pinned: %v, want ErrBusy", err)
	}
	signed := make(chan *offload.Future[[]byte], 1)
	go func() {
		signed <- e.Sign(context.Background(), &offload.SignRequest{Call: offload.Call{Inline: true}, Key: k, Digest: digest, Opts: crypto.SHA256})
	}()
	hs.Close()
	sig, err := wait(t, testwait.Recv(t, signed, "the waiting sign"))
	if err != nil || !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
		t.Fatalf("sign after the hash session: %v", err)
	}
}
