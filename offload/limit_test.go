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

func TestLimiterFIFO(t *testing.T) {
	l := NewLimiter(1)
	if !l.TryAcquire() {
		t.Fatal("TryAcquire on an empty limiter failed")
	}
	const n = 8
	order := make(chan int, n)
	for i := range n {
		// Start waiters one after the other, each queued before the next.
		go func() {
			if err := l.Acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			order <- i
		}()
		testwait.Until(t, "the next waiter to queue", func() bool { return waiters(l) == i+1 })
	}
	for want := range n {
		l.Release()
		if got := testwait.Recv(t, order, "the next waiter's admission"); got != want {
			t.Fatalf("waiter %d admitted when %d was due", got, want)
		}
	}
	l.Release()
	if l.InUse() != 0 {
		t.Fatalf("InUse = %d", l.InUse())
	}
}

func TestLimiterAcquireContext(t *testing.T) {
	l := NewLimiter(2)
	ctx := context.Background()
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	// Already cancelled: fails at once, nothing changed.
	dead, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Acquire(dead); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire(dead) = %v", err)
	}
	// Cancelled while waiting.
	live, cancel2 := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- l.Acquire(live) }()
	testwait.Until(t, "a waiter to queue", func() bool { return waiters(l) == 1 })
	cancel2()
	if err := testwait.Recv(t, errc, "the cancelled Acquire"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire cancelled while waiting = %v", err)
	}
	if l.InUse() != 2 || waiters(l) != 0 {
		t.Fatalf("after a cancelled Acquire: InUse %d waiters %d, want 2 0", l.InUse(), waiters(l))
	}
	// Deadline.
	tctx, cancel3 := context.WithTimeout(ctx, time.Millisecond)
	defer cancel3()
	if err := l.Acquire(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with deadline = %v", err)
	}
	l.Release()
	l.Release()
	if l.InUse() != 0 {
		t.Fatalf("InUse = %d", l.InUse())
	}
	// The limiter still works in full.
	got := 0
	for range 3 {
		if l.TryAcquire() {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("limiter admits %d after cancelled waiters, want its capacity 2", got)
	}
}

func TestLimiterCancelRacesGrant(t *testing.T) {
	// A waiter whose ctx ends just as it is granted hands the slot on.
	l := NewLimiter(1)
	for range 200 {
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- l.Acquire(ctx) }()
		testwait.Until(t, "a waiter to queue", func() bool { return waiters(l) == 1 })
		go cancel()
		l.Release()
		if err := testwait.Recv(t, errc, "the racing Acquire"); err == nil {
			l.Release()
		}
		if l.InUse() != 0 || waiters(l) != 0 {
			t.Fatalf("InUse %d waiters %d after the race", l.InUse(), waiters(l))
		}
	}
}

func TestLimiterTryAcquireNeverJumps(t *testing.T) {
	l := NewLimiter(2)
	l.TryAcquire()
	l.TryAcquire()
	done := make(chan struct{})
	go func() {
		if err := l.Acquire(context.Background()); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	testwait.Until(t, "a waiter to queue", func() bool { return waiters(l) == 1 })
	// Free one slot; the waiter must get it, not a TryAcquire.
	l.Release()
	testwait.Recv(t, done, "the waiter's Acquire")
	if l.TryAcquire() {
		t.Fatal("TryAcquire took a slot that was not free")
	}
	// With a slot free but a waiter queued, TryAcquire answers false. Build
	// that state under the lock, since a free slot is granted at once.
	l.mu.Lock()
	l.cur.Add(-1)
	l.waiters.PushBack(make(chan struct{}))
	l.nwait.Add(1)
	l.mu.Unlock()
	if l.TryAcquire() {
		t.Fatal("TryAcquire jumped a queued waiter")
	}
}

func TestLimiterReleaseWithoutAcquirePanics(t *testing.T) {
	l := NewLimiter(1)
	defer func() {
		if recover() == nil {
			t.Fatal("Release without Acquire did not panic")
		}
	}()
	l.Release()
}

func TestLimiterCap(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{-1, 1}, {0, 1}, {1, 1}, {9, 9}} {
		if got := NewLimiter(tc.n).Cap(); got != tc.want {
			t.Errorf("NewLimiter(%d).Cap() = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func waiters(l *Limiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiters.Len()
}

// Many goroutines taking and returning slots, some through Acquire with
// contexts that end: the limit is never exceeded and nothing is lost.
func TestLimiterStress(t *testing.T) {
	const size, goroutines, rounds = 3, 16, 300
	l := NewLimiter(size)
	var held atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				var ok bool
				switch (g + i) % 3 {
				case 0:
					ok = l.TryAcquire()
				case 1:
					ok = l.Acquire(context.Background()) == nil
				default:
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Microsecond)
					ok = l.Acquire(ctx) == nil
					cancel()
				}
				if !ok {
					continue
				}
				if n := held.Add(1); n > size {
					t.Errorf("%d slots held, limit %d", n, size)
				}
				held.Add(-1)
				l.Release()
			}
		}()
	}
	testwait.Group(t, &wg, "the storm of Acquires")
	if l.InUse() != 0 || waiters(l) != 0 || l.nwait.Load() != 0 {
		t.Fatalf("after the storm: %d in use, %d waiters (%d counted)", l.InUse(), waiters(l), l.nwait.Load())
	}
}
