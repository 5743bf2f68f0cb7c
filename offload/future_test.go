package offload

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
)

func TestFutureResolveOnce(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	if !p.Pending() {
		t.Fatal("new promise is not pending")
	}
	if v, err := f.Poll(); err != ErrNotReady || v != 0 {
		t.Fatalf("Poll before resolution = %v, %v; want 0, ErrNotReady", v, err)
	}
	if err := f.Err(); err != ErrNotReady {
		t.Fatalf("Err before resolution = %v", err)
	}
	select {
	case <-f.Done():
		t.Fatal("Done closed before resolution")
	default:
	}
	if !p.Resolve(1, nil) {
		t.Fatal("first Resolve refused")
	}
	if p.Resolve(2, errors.New("late")) {
		t.Fatal("second Resolve accepted")
	}
	if p.Pending() {
		t.Fatal("resolved promise still pending")
	}
	testwait.Done(t, f, "the resolved future's Done")
	if v, err := f.Poll(); v != 1 || err != nil {
		t.Fatalf("Poll = %v, %v; want 1, nil", v, err)
	}
	if v, err := testwait.Wait(t, f, "the resolved future"); v != 1 || err != nil {
		t.Fatalf("Wait = %v, %v; want 1, nil", v, err)
	}
	if err := f.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

func TestFutureFirstWinsConcurrent(t *testing.T) {
	for range 50 {
		p := NewPromise[int]()
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if p.Resolve(i, nil) {
					wins.Add(1)
				}
			}()
		}
		testwait.Group(t, &wg, "8 resolvers")
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d resolutions won, want 1", n)
		}
		v, _ := p.Future().Poll()
		v2, _ := testwait.Wait(t, p.Future(), "the resolved future")
		if v != v2 {
			t.Fatalf("Poll %d and Wait %d disagree", v, v2)
		}
	}
}

func TestFutureWaitContextEnds(t *testing.T) {
	p := NewPromise[string]()
	f := p.Future()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := f.Wait(ctx)
		errc <- err
	}()
	cancel()
	if err := testwait.Recv(t, errc, "Wait with a cancelled context"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}
	if _, err := f.Poll(); err != ErrNotReady {
		t.Fatalf("future no longer pending after an abandoned Wait: %v", err)
	}
	// A cause is reported as such.
	cause := errors.New("caller gave up")
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	cancel2(cause)
	if _, err := f.Wait(ctx2); err != cause {
		t.Fatalf("Wait with a cause = %v, want %v", err, cause)
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel3()
	if _, err := f.Wait(ctx3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a deadline = %v", err)
	}
	p.Resolve("late", nil)
	if v, err := testwait.Wait(t, f, "the future resolved late"); v != "late" || err != nil {
		t.Fatalf("Wait after resolution = %q, %v", v, err)
	}
	// A resolved future answers even a dead context with its value.
	if v, err := f.Wait(ctx); v != "late" || err != nil {
		t.Fatalf("Wait(cancelled ctx) on resolved future = %q, %v", v, err)
	}
}

func TestFutureManyWaiters(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	const n = 100
	var wg sync.WaitGroup
	var started sync.WaitGroup
	results := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			results[i], errs[i] = f.Wait(context.Background())
		}()
	}
	testwait.Group(t, &started, "100 waiters to start")
	p.Resolve(42, nil)
	testwait.Group(t, &wg, "100 waiters on one future")
	for i := range n {
		if results[i] != 42 || errs[i] != nil {
			t.Fatalf("waiter %d got %v, %v", i, results[i], errs[i])
		}
	}
}

func TestFutureOnResolve(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	var order []int
	var mu sync.Mutex
	add := func(i int) func() {
		return func() {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}
	}
	f.OnResolve(add(1))
	f.OnResolve(add(2))
	mu.Lock()
	if len(order) != 0 {
		t.Fatalf("hooks ran before resolution: %v", order)
	}
	mu.Unlock()
	// A hook sees the resolved value.
	var seen int
	f.OnResolve(func() { seen, _ = f.Poll() })
	p.Resolve(7, nil)
	if len(order) != 2 || order[0] != 1 || order[1] != 2 {
		t.Fatalf("hooks ran as %v, want [1 2]", order)
	}
	if seen != 7 {
		t.Fatalf("hook saw %d, want 7", seen)
	}
	// After resolution a hook runs at once, on the caller's goroutine.
	ran := false
	f.OnResolve(func() { ran = true })
	if !ran {
		t.Fatal("hook added after resolution did not run at once")
	}
	// A second Resolve does not run hooks again.
	p.Resolve(8, nil)
	if len(order) != 2 {
		t.Fatalf("hooks ran again: %v", order)
	}
}

func TestFutureOnResolveRace(t *testing.T) {
	for range 200 {
		p := NewPromise[int]()
		var n atomic.Int32
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.Future().OnResolve(func() { n.Add(1) })
			}()
		}
		go p.Resolve(1, nil)
		testwait.Group(t, &wg, "4 goroutines adding hooks")
		testwait.Done(t, p.Future(), "the resolved future's Done")
		// Hooks added concurrently with Resolve run exactly once each; the
		// ones queued run on the resolving goroutine after Done closes, so
		// wait for them.
		testwait.Until(t, "4 hooks to run", func() bool { return n.Load() == 4 })
		if got := n.Load(); got != 4 {
			t.Fatalf("%d hooks ran, want 4", got)
		}
	}
}

func TestResolvedAndFailed(t *testing.T) {
	f := Resolved([]byte("x"), nil)
	if v, err := f.Poll(); string(v) != "x" || err != nil {
		t.Fatalf("Resolved Poll = %q, %v", v, err)
	}
	select {
	case <-f.Done():
	default:
		t.Fatal("Resolved future's Done is open")
	}
	ran := false
	f.OnResolve(func() { ran = true })
	if !ran {
		t.Fatal("OnResolve on a Resolved future did not run")
	}
	boom := errors.New("boom")
	g := Failed[int](boom)
	if v, err := testwait.Wait(t, g, "the failed future"); v != 0 || err != boom {
		t.Fatalf("Failed Wait = %v, %v", v, err)
	}
	if g.Err() != boom {
		t.Fatalf("Failed Err = %v", g.Err())
	}
	// Two already-resolved futures share nothing but the closed channel.
	h := Failed[int](nil)
	if v, err := h.Poll(); v != 0 || err != nil {
		t.Fatalf("Failed(nil) Poll = %v, %v", v, err)
	}
}

// BenchmarkFuture measures the hand-off itself: a promise made, resolved by
// "the device" and waited for by the caller, on a no-op.
func BenchmarkFuture(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p := NewPromise[[]byte]()
		p.Resolve(nil, nil)
		if _, err := p.Future().Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFutureCrossGoroutine resolves on another goroutine, as an
// engine's worker does.
func BenchmarkFutureCrossGoroutine(b *testing.B) {
	ctx := context.Background()
	work := make(chan Promise[[]byte], 1)
	go func() {
		for p := range work {
			p.Resolve(nil, nil)
		}
	}()
	defer close(work)
	b.ReportAllocs()
	for b.Loop() {
		p := NewPromise[[]byte]()
		work <- p
		if _, err := p.Future().Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
