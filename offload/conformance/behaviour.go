package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

// workload is a stream of requests whose results can be checked: signatures
// with the first signing algorithm the engine claims, or random bytes.
type workload struct {
	name   string
	submit func(ctx context.Context, i int) *offload.Future[[]byte]
	check  func(i int, v []byte) bool
}

func msgOf(i int) []byte { return []byte(fmt.Sprintf("conformance request %d", i)) }

func (s *suite) workload(t *testing.T) workload { return s.workloadWith(t, offload.Call{}) }

// workloadWith is workload with every request entering as call says.
func (s *suite) workloadWith(t *testing.T, call offload.Call) workload {
	t.Helper()
	switch {
	case s.info.Supports(offload.ECDSAP256):
		k := s.key(t, offload.KeyECDSAP256, 0).key
		pub := k.Public().(*ecdsa.PublicKey)
		return workload{"ECDSA-P256",
			func(ctx context.Context, i int) *offload.Future[[]byte] {
				return s.Engine.Sign(ctx, &offload.SignRequest{Call: call, Key: k, Digest: hashOf(crypto.SHA256, msgOf(i)), Opts: crypto.SHA256})
			},
			func(i int, v []byte) bool { return ecdsa.VerifyASN1(pub, hashOf(crypto.SHA256, msgOf(i)), v) }}
	case s.info.Supports(offload.Ed25519):
		k := s.key(t, offload.KeyEd25519, 0).key
		pub := k.Public().(ed25519.PublicKey)
		return workload{"Ed25519",
			func(ctx context.Context, i int) *offload.Future[[]byte] {
				return s.Engine.Sign(ctx, &offload.SignRequest{Call: call, Key: k, Message: msgOf(i)})
			},
			func(i int, v []byte) bool { return ed25519.Verify(pub, msgOf(i), v) }}
	case s.info.Supports(offload.RSAPKCS1v15):
		k := s.key(t, offload.KeyRSA, 0).key
		pub := k.Public().(*rsa.PublicKey)
		return workload{"RSA-PKCS1v15",
			func(ctx context.Context, i int) *offload.Future[[]byte] {
				return s.Engine.Sign(ctx, &offload.SignRequest{Call: call, Key: k, Digest: hashOf(crypto.SHA256, msgOf(i)), Opts: crypto.SHA256})
			},
			func(i int, v []byte) bool {
				return rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashOf(crypto.SHA256, msgOf(i)), v) == nil
			}}
	case s.info.Supports(offload.Random):
		return workload{"random",
			func(ctx context.Context, i int) *offload.Future[[]byte] {
				return s.Engine.Random(ctx, &offload.RandomRequest{Call: call, N: 1 + i%32})
			},
			func(i int, v []byte) bool { return len(v) == 1+i%32 }}
	}
	t.Skip("the engine claims neither a signature nor random bytes")
	return workload{}
}

func behaviour(t *testing.T, f Factory, m mode) {
	// Each case makes its own engine, closes it and checks that no
	// goroutine outlives it.
	cases := []struct {
		name string
		run  func(t *testing.T, s *suite, w workload)
	}{
		{"context_already_ended", contextAlreadyEnded},
		{"cancel_races", cancelRaces},
		{"close_in_flight", closeInFlight},
		{"poll", poll},
		{"many_waiters", manyWaiters},
		{"queue", queue},
		{"busy", busy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leaks := leakcheck.Check(t)
			s := newSuite(t, f, m)
			w := s.workload(t)
			c.run(t, s, w)
			if err := s.Engine.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if n := s.Engine.Stats(); n.Op(offload.OpSign).InFlight != 0 || n.Op(offload.OpRandom).InFlight != 0 {
				t.Errorf("operations in flight after Close:\n%v", n)
			}
			leaks()
		})
	}
}

func contextAlreadyEnded(t *testing.T, s *suite, w workload) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.submit(ctx, 0).Err(); !errors.Is(err, context.Canceled) {
		// The future may resolve a little later, but with the same error.
		if _, err := waitErr(t, s, w.submit(ctx, 0)); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with an ended context: %v", w.name, err)
		}
	}
	cause := errors.New("conformance: gave up")
	cctx, ccancel := context.WithCancelCause(context.Background())
	ccancel(cause)
	if _, err := waitErr(t, s, w.submit(cctx, 1)); !errors.Is(err, cause) {
		t.Errorf("%s with an ended context: %v, want its cause", w.name, err)
	}
	if s.info.Supports(offload.SHA256) {
		f := s.Engine.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Final: true})
		if _, err := waitErr(t, s, f); !errors.Is(err, context.Canceled) {
			t.Errorf("hash with an ended context: %v", err)
		}
	}
}

func cancelRaces(t *testing.T, s *suite, w workload) {
	const n = 200
	futures := make([]*offload.Future[[]byte], n)
	hooks := make([]atomic.Int32, n)
	cancels := make([]context.CancelFunc, n)
	timers := make([]*time.Timer, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		futures[i] = w.submit(ctx, i)
		futures[i].OnResolve(func() { hooks[i].Add(1) })
		if i%4 != 0 { // a quarter run to the end
			timers[i] = time.AfterFunc(time.Duration(rand.IntN(3000))*time.Microsecond, cancel)
		}
	}
	delivered, cancelled := 0, 0
	for i, f := range futures {
		testwait.Done(t, f, fmt.Sprintf("request %d", i))
		v, err := f.Poll()
		switch {
		case err == nil:
			delivered++
			if !w.check(i, v) {
				t.Errorf("request %d: a delivered result does not check out", i)
			}
		case errors.Is(err, context.Canceled):
			cancelled++
			if v != nil {
				t.Errorf("request %d: cancelled, yet carries a result", i)
			}
		case s.injected(err):
		default:
			t.Errorf("request %d: %v", i, err)
		}
		// Resolution is final.
		v2, err2 := testwait.Wait(t, f, fmt.Sprintf("request %d, resolved", i))
		if !bytes.Equal(v, v2) || err != err2 {
			t.Errorf("request %d changed after resolving", i)
		}
	}
	for i := range n {
		if timers[i] != nil {
			timers[i].Stop()
		}
		cancels[i]()
	}
	// Every hook ran once; they run just after Done closes, so give them time.
	deadline := time.Now().Add(10 * time.Second)
	for i := range n {
		for hooks[i].Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if h := hooks[i].Load(); h != 1 {
			t.Errorf("request %d resolved %d times", i, h)
		}
	}
	t.Logf("%s: %d delivered, %d cancelled of %d", w.name, delivered, cancelled, n)
}

func closeInFlight(t *testing.T, s *suite, w workload) {
	const n = 100
	futures := make([]*offload.Future[[]byte], n)
	for i := range n {
		futures[i] = w.submit(context.Background(), i)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Engine.Close() }()
	for i, f := range futures {
		testwait.Done(t, f, fmt.Sprintf("request %d", i))
		v, err := f.Poll()
		switch {
		case err == nil:
			if !w.check(i, v) {
				t.Errorf("request %d: a delivered result does not check out", i)
			}
		case errors.Is(err, offload.ErrClosed), s.injected(err):
		default:
			t.Errorf("request %d: %v, want a result or ErrClosed", i, err)
		}
	}
	if err := testwait.Recv(t, closed, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Every call now fails with ErrClosed.
	ctx := context.Background()
	if _, err := waitErr(t, s, w.submit(ctx, 0)); !errors.Is(err, offload.ErrClosed) {
		t.Errorf("%s after Close: %v", w.name, err)
	}
	calls := map[offload.Algorithm]func() error{
		offload.Random: func() error { return s.Engine.Random(ctx, &offload.RandomRequest{N: 8}).Err() },
		offload.SHA256: func() error {
			return s.Engine.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Final: true}).Err()
		},
	}
	for a, call := range calls {
		if !s.info.Supports(a) {
			continue
		}
		if err := call(); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("%v after Close: %v", a, err)
		}
	}
	if s.info.Supports(offload.RSAOAEP) || s.info.Supports(offload.RSAPKCS1v15Decrypt) {
		if kp, err := s.tryKey(t, offload.KeyRSA, 0); err == nil {
			err := s.Engine.Decrypt(ctx, &offload.DecryptRequest{Key: kp.key, Ciphertext: make([]byte, 256)}).Err()
			if !errors.Is(err, offload.ErrClosed) {
				t.Errorf("decrypt after Close: %v", err)
			}
		}
	}
	if s.Import != nil {
		if _, err := s.Import(newPrivate(t, offload.KeyEd25519, 0)); !errors.Is(err, offload.ErrClosed) && !errors.Is(err, offload.ErrUnsupported) {
			t.Errorf("import after Close: %v", err)
		}
	}
	if s.Generate != nil {
		if _, err := s.Generate(ctx, offload.KeyECDSAP256, 0); !errors.Is(err, offload.ErrClosed) && !errors.Is(err, offload.ErrUnsupported) {
			t.Errorf("generate after Close: %v", err)
		}
	}
	if err := s.Engine.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func poll(t *testing.T, s *suite, w workload) {
	const n = 50
	type early struct {
		v   []byte
		err error
	}
	futures := make([]*offload.Future[[]byte], n)
	polls := make([]early, n)
	pending := 0
	for i := range n {
		futures[i] = w.submit(context.Background(), i)
		polls[i].v, polls[i].err = futures[i].Poll()
		if polls[i].err == offload.ErrNotReady {
			pending++
			if polls[i].v != nil {
				t.Errorf("request %d: ErrNotReady with a value", i)
			}
		}
	}
	for i, f := range futures {
		v, err := waitErr(t, s, f)
		if s.injected(f.Err()) {
			continue
		}
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !w.check(i, v) {
			t.Errorf("request %d does not check out", i)
		}
		if p := polls[i]; p.err != offload.ErrNotReady && (p.err != nil || !bytes.Equal(p.v, v)) {
			t.Errorf("request %d: early Poll gave %x, %v; Wait gave %x", i, p.v, p.err, v)
		}
		if pv, perr := f.Poll(); perr != nil || !bytes.Equal(pv, v) {
			t.Errorf("request %d: Poll after Wait gave %x, %v", i, pv, perr)
		}
	}
	t.Logf("%d of %d requests were pending at their first Poll", pending, n)
}

func manyWaiters(t *testing.T, s *suite, w workload) {
	const n = 64
	f := w.submit(context.Background(), 7)
	vals := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			vals[i], errs[i] = f.Wait(ctx)
		}()
	}
	testwait.Group(t, &wg, "the waiters on one future")
	for i := range n {
		if !bytes.Equal(vals[i], vals[0]) || errs[i] != errs[0] {
			t.Fatalf("waiter %d saw %x, %v; waiter 0 saw %x, %v", i, vals[i], errs[i], vals[0], errs[0])
		}
	}
	if errs[0] == nil && !w.check(7, vals[0]) {
		t.Error("result does not check out")
	} else if errs[0] != nil && !s.injected(errs[0]) {
		t.Error(errs[0])
	}
}

func queue(t *testing.T, s *suite, w workload) {
	const n, batch = 200, 16
	q := offload.NewQueue()
	futures := make([]*offload.Future[[]byte], n)
	for i := range n {
		futures[i] = w.submit(context.Background(), i)
		q.Add(futures[i], i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dst := make([]offload.Completion, batch)
	seen := make([]bool, n)
	got := 0
	for {
		m, err := q.Collect(ctx, dst)
		if err != nil {
			t.Fatalf("Collect after %d: %v", got, err)
		}
		if m == 0 {
			break
		}
		if m > batch {
			t.Fatalf("Collect returned %d > %d", m, batch)
		}
		for _, c := range dst[:m] {
			i := c.Tag.(int)
			if seen[i] {
				t.Fatalf("request %d collected twice", i)
			}
			seen[i] = true
			if c.Future != offload.Awaitable(futures[i]) {
				t.Fatalf("request %d came with another future", i)
			}
			v, err := futures[i].Poll()
			switch {
			case err == nil:
				if !w.check(i, v) {
					t.Errorf("request %d does not check out", i)
				}
			case !s.injected(err):
				t.Errorf("request %d: %v", i, err)
			}
		}
		got += m
	}
	if got != n {
		t.Fatalf("collected %d of %d", got, n)
	}
}

func busy(t *testing.T, s *suite, w workload) {
	if s.Saturate == nil {
		t.Log("Setup.Saturate is nil: ErrBusy not checked")
		return
	}
	if !s.info.Supports(offload.Random) {
		t.Log("random bytes not claimed: ErrBusy not checked")
		return
	}
	release := s.Saturate(t)
	f := s.Engine.Random(context.Background(), &offload.RandomRequest{Call: offload.Call{NoWait: true}, N: 8})
	expectErr(t, s, f, offload.ErrBusy, "NoWait on a full engine")
	release()
	// Once the slots are free again, NoWait is admitted.
	deadline := time.Now().Add(time.Minute)
	for {
		f := s.Engine.Random(context.Background(), &offload.RandomRequest{Call: offload.Call{NoWait: true}, N: 8})
		_, err := waitErr(t, s, f)
		if err == nil {
			break
		}
		if !errors.Is(err, offload.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("NoWait after release: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}
