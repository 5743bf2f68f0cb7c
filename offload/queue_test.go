package offload

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
)

func TestQueueCollectBatches(t *testing.T) {
	const n, batch = 500, 16
	q := NewQueue()
	promises := make([]Promise[int], n)
	for i := range promises {
		promises[i] = NewPromise[int]()
		q.Add(promises[i].Future(), i)
	}
	if q.Len() != n {
		t.Fatalf("Len = %d, want %d", q.Len(), n)
	}
	// Resolve in random order from several goroutines.
	order := rand.Perm(n)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				k := order[i]
				if i%7 == 0 {
					time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
				}
				promises[k].Resolve(k*2, nil)
			}
		}()
	}
	seen := make([]bool, n)
	dst := make([]Completion, batch)
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got < n {
		m, err := q.Collect(ctx, dst)
		if err != nil {
			t.Fatalf("Collect after %d: %v", got, err)
		}
		if m < 1 || m > batch {
			t.Fatalf("Collect returned %d, want 1..%d", m, batch)
		}
		for _, c := range dst[:m] {
			k := c.Tag.(int)
			if seen[k] {
				t.Fatalf("tag %d delivered twice", k)
			}
			seen[k] = true
			if c.Future.Err() != nil {
				t.Fatalf("tag %d: %v", k, c.Future.Err())
			}
			v, _ := Result[int](c)
			if v != k*2 {
				t.Fatalf("tag %d carries %d", k, v)
			}
		}
		got += m
	}
	testwait.Group(t, &wg, "the resolving goroutines")
	if q.Len() != 0 {
		t.Fatalf("Len after collecting everything = %d", q.Len())
	}
	// Nothing outstanding: Collect answers 0 at once, even with a live ctx.
	if m, err := q.Collect(context.Background(), dst); m != 0 || err != nil {
		t.Fatalf("empty Collect = %d, %v", m, err)
	}
}

func TestQueueEmptyAndZeroDst(t *testing.T) {
	q := NewQueue()
	if m, err := q.Collect(context.Background(), make([]Completion, 4)); m != 0 || err != nil {
		t.Fatalf("Collect on a new queue = %d, %v", m, err)
	}
	p := NewPromise[int]()
	q.Add(p.Future(), nil)
	if m, err := q.Collect(context.Background(), nil); m != 0 || err != nil {
		t.Fatalf("Collect into nil dst = %d, %v", m, err)
	}
}

func TestQueueCollectContext(t *testing.T) {
	q := NewQueue()
	p := NewPromise[int]()
	q.Add(p.Future(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := q.Collect(ctx, make([]Completion, 1))
		errc <- err
	}()
	cancel()
	if err := testwait.Recv(t, errc, "the cancelled Collect"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Collect after cancel = %v", err)
	}
	if q.Len() != 1 {
		t.Fatalf("Len = %d after a cancelled Collect, want 1", q.Len())
	}
	p.Resolve(1, nil)
	dst := make([]Completion, 2)
	m, err := q.Collect(context.Background(), dst)
	if m != 1 || err != nil || dst[0].Tag != "a" {
		t.Fatalf("Collect = %d, %v, %v", m, err, dst[0].Tag)
	}
}

func TestQueuePoll(t *testing.T) {
	q := NewQueue()
	ps := make([]Promise[int], 3)
	for i := range ps {
		ps[i] = NewPromise[int]()
		q.Add(ps[i].Future(), i)
	}
	dst := make([]Completion, 8)
	if m := q.Poll(dst); m != 0 {
		t.Fatalf("Poll with nothing done = %d", m)
	}
	ps[2].Resolve(2, nil)
	ps[0].Resolve(0, errors.New("x"))
	m := q.Poll(dst)
	if m != 2 {
		t.Fatalf("Poll = %d, want 2", m)
	}
	// Completions come out in the order they resolved.
	if dst[0].Tag != 2 || dst[1].Tag != 0 {
		t.Fatalf("order %v %v, want 2 0", dst[0].Tag, dst[1].Tag)
	}
	if dst[1].Future.Err() == nil {
		t.Fatal("failed future's error lost")
	}
	if q.Len() != 1 {
		t.Fatalf("Len = %d, want 1", q.Len())
	}
	// A short dst takes only what fits; the rest stays.
	ps[1].Resolve(1, nil)
	q2 := NewQueue()
	for i := range 5 {
		q2.Add(Resolved(i, nil), i)
	}
	small := make([]Completion, 2)
	if m := q2.Poll(small); m != 2 {
		t.Fatalf("Poll into 2 = %d", m)
	}
	if q2.Len() != 3 {
		t.Fatalf("Len = %d, want 3", q2.Len())
	}
	// Adding the same future twice delivers it twice.
	q3 := NewQueue()
	f := Resolved(1, nil)
	q3.Add(f, 1)
	q3.Add(f, 2)
	if m := q3.Poll(dst); m != 2 {
		t.Fatalf("same future added twice delivered %d times", m)
	}
}

// TestQueueMixedResults: one queue collects futures of several result
// types; Result reads each at its own type, and a read at the wrong type, or
// of a completion without a future, is an error wrapping ErrInvalid.
func TestQueueMixedResults(t *testing.T) {
	q := NewQueue()
	boom := errors.New("boom")
	q.Add(Resolved([]byte("sig"), nil), "bytes")
	q.Add(Resolved(HashResult{Sum: []byte{1, 2}}, nil), "hash")
	q.Add(Failed[struct{}](boom), "failed")
	p := NewPromise[int]()
	q.Add(p.Future(), "late")
	p.Resolve(7, nil)
	dst := make([]Completion, 8)
	n, err := q.Collect(context.Background(), dst)
	if err != nil || n != 4 {
		t.Fatalf("Collect = %d, %v; want 4", n, err)
	}
	for _, c := range dst[:n] {
		switch c.Tag {
		case "bytes":
			if v, err := Result[[]byte](c); string(v) != "sig" || err != nil {
				t.Errorf("Result[[]byte] = %q, %v", v, err)
			}
		case "hash":
			if v, err := Result[HashResult](c); len(v.Sum) != 2 || err != nil {
				t.Errorf("Result[HashResult] = %v, %v", v, err)
			}
		case "failed":
			if _, err := Result[struct{}](c); err != boom || c.Err() != boom {
				t.Errorf("Result[struct{}] = %v, Err = %v; want boom", err, c.Err())
			}
		case "late":
			if v, err := Result[int](c); v != 7 || err != nil {
				t.Errorf("Result[int] = %d, %v", v, err)
			}
		}
		if c.Tag != "bytes" {
			if v, err := Result[[]byte](c); v != nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("%v read as []byte = %v, %v; want an error wrapping ErrInvalid", c.Tag, v, err)
			}
		}
	}
	var empty Completion
	if _, err := Result[int](empty); !errors.Is(err, ErrInvalid) || !errors.Is(empty.Err(), ErrInvalid) {
		t.Errorf("a completion without a future: Result %v, Err %v", err, empty.Err())
	}
}

// TestNilContext: Wait, Collect and Acquire refuse a nil context with
// ErrInvalid whatever the state, so whether it is caught does not depend on
// timing.
func TestNilContext(t *testing.T) {
	var nilCtx context.Context
	p := NewPromise[int]()
	if _, err := p.Future().Wait(nilCtx); !errors.Is(err, ErrInvalid) {
		t.Errorf("Wait(nil) pending = %v", err)
	}
	p.Resolve(1, nil)
	if v, err := p.Future().Wait(nilCtx); v != 0 || !errors.Is(err, ErrInvalid) {
		t.Errorf("Wait(nil) resolved = %d, %v", v, err)
	}
	q := NewQueue()
	q.Add(p.Future(), nil)
	if n, err := q.Collect(nilCtx, make([]Completion, 1)); n != 0 || !errors.Is(err, ErrInvalid) {
		t.Errorf("Collect(nil) = %d, %v", n, err)
	}
	l := NewLimiter(1)
	if err := l.Acquire(nilCtx); !errors.Is(err, ErrInvalid) || l.InUse() != 0 {
		t.Errorf("Acquire(nil) with a free slot = %v, %d in use", err, l.InUse())
	}
	if err := CheckContext(context.TODO()); err != nil {
		t.Errorf("CheckContext(TODO) = %v", err)
	}
}
