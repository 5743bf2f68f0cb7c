//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// streamHash hashes msg through one hash session on e in Updates of random
// sizes up to MaxInline and returns the digest.
func streamHash(ctx context.Context, e *Engine, h crypto.Hash, msg []byte, rng *rand.Rand) ([]byte, error) {
	hs, err := e.HashSession(ctx, h)
	if err != nil {
		return nil, err
	}
	defer hs.Close()
	for off := 0; off < len(msg); {
		n := min(len(msg)-off, 1+rng.IntN(e.Info().MaxInline))
		if rng.IntN(2) == 0 {
			n = min(len(msg)-off, rng.IntN(300))
		}
		if _, err := hs.Update(ctx, msg[off:off+n]).Wait(ctx); err != nil {
			return nil, fmt.Errorf("update at %d: %w", off, err)
		}
		off += n
	}
	return hs.Final(ctx).Wait(ctx)
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// waitIdle waits until no hash operation is in flight on e.
func waitIdle(t *testing.T, e *Engine) {
	t.Helper()
	for range 3000 {
		if e.Stats().Op(offload.OpHash).InFlight == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("hash operations still in flight: %+v", e.Stats().Op(offload.OpHash))
}

func TestHashSessionDigests(t *testing.T) {
	e, _ := sharedEngine(t)
	ctx := context.Background()
	for _, h := range []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, n := range []int{0, 1, 127, 128, 1000, 32 << 10, 100<<10 + 3} {
			t.Run(fmt.Sprintf("%v/%d", h, n), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(h), uint64(n)))
				msg := randBytes(rng, n)
				got, err := streamHash(ctx, e, h, msg, rng)
				if err != nil {
					t.Fatal(err)
				}
				if want := hashOf(h, msg); !bytes.Equal(got, want) {
					t.Fatalf("digest %x, want %x", got, want)
				}
			})
		}
	}
}

func TestHashSessionBadInput(t *testing.T) {
	e := openEngine(t, 1)
	ctx := context.Background()
	before := e.Stats().Op(offload.OpHash).Submitted
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA3_256, crypto.MD5, 0} {
		if hs, err := e.HashSession(ctx, h); !errors.Is(err, offload.ErrUnsupported) || hs != nil {
			t.Errorf("HashSession(%v): %v, want ErrUnsupported", h, err)
		}
	}
	if after := e.Stats().Op(offload.OpHash).Submitted; after != before {
		t.Errorf("unsupported hashes reached the engine: %d submitted", after-before)
	}

	t.Run("update-over-cap", func(t *testing.T) {
		hs, err := e.HashSession(ctx, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		defer hs.Close()
		if _, err := wait(t, hs.Update(ctx, make([]byte, e.Info().MaxInline+1))); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("over the cap: %v, want ErrInvalid", err)
		}
		if _, err := wait(t, hs.Final(ctx)); err == nil {
			t.Fatal("Final after a failed Update succeeded")
		}
		waitIdle(t, e)
	})

	t.Run("after-final", func(t *testing.T) {
		hs, err := e.HashSession(ctx, crypto.SHA384)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wait(t, hs.Update(ctx, []byte("abc"))); err != nil {
			t.Fatal(err)
		}
		sum, err := wait(t, hs.Final(ctx))
		if err != nil || !bytes.Equal(sum, hashOf(crypto.SHA384, []byte("abc"))) {
			t.Fatalf("%x, %v", sum, err)
		}
		if _, err := wait(t, hs.Update(ctx, []byte("more"))); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("Update after Final: %v, want ErrInvalid", err)
		}
		if err := hs.Close(); err != nil {
			t.Fatal(err)
		}
		if got := e.Stats().Op(offload.OpHash).InFlight; got != 0 {
			t.Fatalf("InFlight %d after Final", got)
		}
	})
}

func TestHashSessionCancel(t *testing.T) {
	e := openEngine(t, 1)
	k, err := e.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("after the stream"))
	sign := func(call offload.Call) error {
		_, err := wait(t, e.Sign(context.Background(), &offload.SignRequest{Call: call, Key: k, Digest: digest, Opts: crypto.SHA256}))
		return err
	}
	inUpdate, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	hold := false
	e.updateHook = func() {
		mu.Lock()
		h := hold
		mu.Unlock()
		if h {
			inUpdate <- struct{}{}
			<-release
		}
	}
	hs, err := e.HashSession(context.Background(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if _, err := wait(t, hs.Update(context.Background(), []byte("first"))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	hold = true
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	f := hs.Update(ctx, []byte("second"))
	<-inUpdate // the worker is about to call C_DigestUpdate
	cancel()
	// The future resolves while the worker is still held.
	if _, err := wait(t, f); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Update: %v", err)
	}
	// The slot is still held by the worker finishing the call...
	if err := sign(offload.Call{NoWait: true}); !errors.Is(err, offload.ErrBusy) {
		t.Fatalf("slot free while the token works: %v", err)
	}
	close(release)
	// ...and comes back once it is done; the stream is over.
	if err := sign(offload.Call{}); err != nil {
		t.Fatalf("sign after the cancelled stream: %v", err)
	}
	if got := e.Stats().Op(offload.OpHash).InFlight; got != 0 {
		t.Fatalf("hash InFlight %d", got)
	}
	if _, err := wait(t, hs.Final(context.Background())); !errors.Is(err, context.Canceled) {
		t.Fatalf("Final on a cancelled stream: %v", err)
	}
	// Final with an ended context.
	mu.Lock()
	hold = false
	mu.Unlock()
	hs2, err := e.HashSession(context.Background(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, hs2.Final(ctx)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Final with an ended context: %v", err)
	}
	if err := sign(offload.Call{}); err != nil {
		t.Fatalf("sign: %v", err)
	}
}

func TestHashSessionClose(t *testing.T) {
	// One worker: whatever runs after the stream runs on the same worker
	// and PKCS #11 session, which must have no digest left active.
	e := openEngine(t, 1)
	ctx := context.Background()
	k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		updates int
	}{{"before-any-update", 0}, {"mid-stream", 3}} {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := e.HashSession(ctx, crypto.SHA512)
			if err != nil {
				t.Fatal(err)
			}
			for range tt.updates {
				if _, err := wait(t, hs.Update(ctx, []byte("abandoned"))); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if err := hs.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			if _, err := wait(t, hs.Update(ctx, []byte("x"))); !errors.Is(err, offload.ErrClosed) {
				t.Fatalf("Update after Close: %v", err)
			}
			digest := hashOf(crypto.SHA256, []byte("m"))
			if _, err := wait(t, e.Sign(ctx, &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256})); err != nil {
				t.Fatalf("sign after Close: %v", err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			msg := randBytes(rng, 5000)
			sum, err := streamHash(ctx, e, crypto.SHA512, msg, rng)
			if err != nil || !bytes.Equal(sum, hashOf(crypto.SHA512, msg)) {
				t.Fatalf("next stream: %x, %v", sum, err)
			}
			waitIdle(t, e)
		})
	}
}

func TestHashSessionEngineClose(t *testing.T) {
	needHSM(t)
	e, err := Open(context.Background(), Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	open, err := e.HashSession(ctx, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, open.Update(ctx, []byte("open"))); err != nil {
		t.Fatal(err)
	}
	idle, err := e.HashSession(ctx, crypto.SHA224) // maybe not even picked up yet
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close blocked on open hash sessions")
	}
	for _, hs := range []offload.HashSession{open, idle} {
		if _, err := wait(t, hs.Update(ctx, []byte("more"))); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("Update after engine Close: %v", err)
		}
		if _, err := wait(t, hs.Final(ctx)); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("Final after engine Close: %v", err)
		}
		hs.Close()
	}
	if _, err := e.HashSession(ctx, crypto.SHA256); !errors.Is(err, offload.ErrClosed) {
		t.Errorf("HashSession after Close: %v", err)
	}
}

func TestHashSessionConcurrent(t *testing.T) {
	e := openEngine(t, 2)
	const streams = 12
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			h := []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}[i%4]
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			msg := randBytes(rng, 10<<10+i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sum, err := streamHash(ctx, e, h, msg, rng)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("stream %d: %w", i, err)
			case !bytes.Equal(sum, hashOf(h, msg)):
				errs[i] = fmt.Errorf("stream %d: wrong %v digest", i, h)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := e.Stats().Op(offload.OpHash)
	if st.InFlight != 0 || st.MaxInFlight > 2 || st.Completed < streams {
		t.Fatalf("stats %+v", st)
	}
}

func TestHashSessionRecovery(t *testing.T) {
	e := openEngine(t, 1)
	ctx := context.Background()
	k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := e.HashSession(ctx, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if _, err := wait(t, hs.Update(ctx, []byte("before"))); err != nil {
		t.Fatal(err)
	}
	before := e.Recovery()
	// The pinned worker waits between calls: close its session underneath.
	if err := e.p.CloseAllSessions(e.curSlot()); err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, hs.Update(ctx, []byte("after"))); err == nil {
		t.Fatal("Update on a lost session succeeded")
	}
	if _, err := wait(t, hs.Final(ctx)); err == nil {
		t.Fatal("Final on a lost stream succeeded")
	}
	digest := hashOf(crypto.SHA256, []byte("m"))
	if _, err := wait(t, e.Sign(ctx, &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256})); err != nil {
		t.Fatalf("sign after the lost stream: %v", err)
	}
	if after := e.Recovery(); after.Reopened <= before.Reopened {
		t.Errorf("no reopen: before %+v after %+v", before, after)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	msg := randBytes(rng, 3000)
	if sum, err := streamHash(ctx, e, crypto.SHA256, msg, rng); err != nil || !bytes.Equal(sum, hashOf(crypto.SHA256, msg)) {
		t.Fatalf("stream after recovery: %x, %v", sum, err)
	}
}

func TestHashSessionForgotten(t *testing.T) {
	e := openEngine(t, 1)
	func() {
		hs, err := e.HashSession(context.Background(), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wait(t, hs.Update(context.Background(), []byte("dropped"))); err != nil {
			t.Fatal(err)
		}
	}()
	for range 400 {
		runtime.GC()
		if e.Stats().Op(offload.OpHash).InFlight == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("a dropped hash session kept its worker")
}

// TestHashSessionHandleGC drops the last reference to a session's handle
// while its Final is on the way to the worker: a collection at that point
// must not close the session under the call.
func TestHashSessionHandleGC(t *testing.T) {
	e := openEngine(t, 1)
	e.sendHook = func(s *stream) {
		// Collect until the handle's cleanup has ended the stream, or
		// long enough that it would have.
		for i := 0; i < 20 && s.over() == nil; i++ {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}
	data := []byte("the handle is gone")
	for _, update := range []bool{false, true} {
		t.Run(fmt.Sprintf("update=%v", update), func(t *testing.T) {
			ctx := context.Background()
			hs, err := e.HashSession(ctx, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			want := hashOf(crypto.SHA256, nil)
			if update {
				if _, err := hs.Update(ctx, data).Wait(ctx); err != nil {
					t.Fatalf("Update: %v", err)
				}
				want = hashOf(crypto.SHA256, data)
			}
			sum, err := hs.Final(ctx).Wait(ctx) // the last use of hs
			if err != nil {
				t.Fatalf("Final: %v", err)
			}
			if !bytes.Equal(sum, want) {
				t.Fatalf("sum %x, want %x", sum, want)
			}
		})
	}
}
