package exec

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

var errBoom = errors.New("boom")

// injectFunc is an Injector made of a function.
type injectFunc func(op offload.Op, key *offload.Key) Outcome

func (f injectFunc) Decide(op offload.Op, key *offload.Key) Outcome { return f(op, key) }

// fixed decides out for every request.
func fixed(out Outcome) Injector {
	return injectFunc(func(offload.Op, *offload.Key) Outcome { return out })
}

// everyNth fails every nth request with err.
func everyNth(n uint64, err error) Injector {
	var seq atomic.Uint64
	return injectFunc(func(offload.Op, *offload.Key) Outcome {
		if seq.Add(1)%n == 0 {
			return Outcome{Err: err}
		}
		return Outcome{}
	})
}

func newPool(t testing.TB, c Config[struct{}]) *Executor[struct{}] {
	t.Helper()
	c.Name = "test"
	p := New(c)
	t.Cleanup(p.Close)
	return p
}

// blocker is work that waits until released and reports that it started.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

// wait waits for the work to start, with a bound.
func (b *blocker) wait(t *testing.T) {
	t.Helper()
	testwait.Recv(t, b.started, "the blocking work started")
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) op(v int) Op[struct{}, int] {
	return Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) {
		close(b.started)
		<-b.release
		return v, nil
	}}
}

func TestSubmitInline(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 2})
	var ran, detached bool
	f := Submit(p, context.Background(), Op[struct{}, int]{
		Kind:   offload.OpHash,
		Call:   offload.Call{Inline: true},
		Work:   func(struct{}) (int, error) { ran = true; return 5, nil },
		Detach: func() { detached = true },
	})
	// Inline work is done before Submit returns, on this goroutine (so the
	// plain bools above are race-free).
	if !ran {
		t.Fatal("inline work had not run when Submit returned")
	}
	if detached {
		t.Fatal("Detach called for inline work")
	}
	if v, err := f.Poll(); v != 5 || err != nil {
		t.Fatalf("Poll = %v, %v", v, err)
	}
	if p.InFlight() != 0 {
		t.Fatalf("InFlight = %d", p.InFlight())
	}
	s := p.Stats().Op(offload.OpHash)
	if s.Submitted != 1 || s.Completed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Inline work that outlives its context: the work is not interrupted, but
// its result is released and the caller gets the context's error, whether
// the work succeeded or failed; work that ends before the context does
// keeps its result.
func TestSubmitInlineContextEnds(t *testing.T) {
	boom := errors.New("boom")
	cause := errors.New("gave up")
	for _, tc := range []struct {
		name     string
		end      bool  // the work ends the context before it returns
		workErr  error // what the work fails with
		want     error
		released bool
	}{
		{"ended-result", true, nil, cause, true},
		{"ended-error", true, boom, cause, true},
		{"live-result", false, nil, nil, false},
		{"live-error", false, boom, boom, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 1})
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			buf := []byte("secret")
			var released []byte
			f := Submit(p, ctx, Op[struct{}, []byte]{
				Kind: offload.OpDecrypt,
				Call: offload.Call{Inline: true},
				Work: func(struct{}) ([]byte, error) {
					if tc.end {
						cancel(cause)
					}
					return buf, tc.workErr
				},
				Release: func(b []byte) { released = b; clear(b) },
			})
			v, err := f.Poll()
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Poll = %q, %v; want %v", v, err, tc.want)
			}
			if tc.end && v != nil {
				t.Fatalf("a failed request delivered %q", v)
			}
			if got := released != nil; got != tc.released {
				t.Fatalf("released = %v, want %v", got, tc.released)
			}
			if tc.released && string(buf) != "\x00\x00\x00\x00\x00\x00" {
				t.Fatalf("the released result still holds %q", buf)
			}
			if tc.end {
				var oe *offload.OpError
				if !errors.As(err, &oe) || oe.Op != offload.OpDecrypt {
					t.Fatalf("err = %#v, want an *offload.OpError for decrypt", err)
				}
				if st := p.Stats().Op(offload.OpDecrypt); st.Completed != 0 || st.InFlight != 0 {
					t.Fatalf("stats count a request its context ended as completed: %+v", st)
				}
			}
			if p.InFlight() != 0 {
				t.Fatalf("InFlight = %d", p.InFlight())
			}
		})
	}
}

// A request that sets both Inline and NoWait runs on the caller's goroutine
// when a slot is free, and fails with ErrBusy at once when none is.
func TestSubmitInlineNoWait(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 1})
	call := offload.Call{Inline: true, NoWait: true}
	var ran bool
	f := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: call,
		Work: func(struct{}) (int, error) { ran = true; return 1, nil }})
	if !ran {
		t.Fatal("an inline NoWait request with a free slot did not run on the caller's goroutine")
	}
	if v, err := f.Poll(); v != 1 || err != nil {
		t.Fatalf("Poll = %v, %v", v, err)
	}
	b := newBlocker()
	held := Submit(p, context.Background(), b.op(2))
	b.wait(t)
	g := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: call,
		Work: func(struct{}) (int, error) { t.Error("a busy request ran"); return 0, nil }})
	if _, err := g.Poll(); !errors.Is(err, offload.ErrBusy) {
		t.Fatalf("inline NoWait on a full executor: %v", err)
	}
	close(b.release)
	if _, err := testwait.Wait(t, held, "held request"); err != nil {
		t.Fatal(err)
	}
}

func TestSubmitWorker(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 2, MaxInFlight: 4})
	b := newBlocker()
	var detached atomic.Bool
	o := b.op(9)
	o.Detach = func() { detached.Store(true) }
	f := Submit(p, context.Background(), o)
	if !detached.Load() {
		t.Fatal("Detach not called before queueing")
	}
	b.wait(t)
	if _, err := f.Poll(); err != offload.ErrNotReady {
		t.Fatalf("Poll while working = %v", err)
	}
	close(b.release)
	if v, err := testwait.Wait(t, f, "f"); v != 9 || err != nil {
		t.Fatalf("Wait = %v, %v", v, err)
	}
}

// A blocking request that finds every slot taken waits for one in turn (and
// then goes to a worker, like any request that waited).
func TestSubmitInlineFullGoesToWorker(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 1})
	b := newBlocker()
	f1 := Submit(p, context.Background(), b.op(1))
	b.wait(t)
	caller := make(chan *offload.Future[int])
	go func() {
		caller <- Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true},
			Work: func(struct{}) (int, error) { return 2, nil }})
	}()
	close(b.release)
	f2 := testwait.Recv(t, caller, "the inline caller")
	for i, f := range []*offload.Future[int]{f1, f2} {
		if v, err := testwait.Wait(t, f, "f"); v != i+1 || err != nil {
			t.Fatalf("future %d: %v, %v", i, v, err)
		}
	}
}

func TestSubmitNoWaitBusy(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 1})
	b := newBlocker()
	f := Submit(p, context.Background(), b.op(1))
	b.wait(t)
	g := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{NoWait: true},
		Work: func(struct{}) (int, error) { t.Error("busy request ran"); return 0, nil }})
	if _, err := g.Poll(); !errors.Is(err, offload.ErrBusy) {
		t.Fatalf("NoWait at the limit = %v, want ErrBusy", err)
	}
	var oe *offload.OpError
	if !errors.As(g.Err(), &oe) || oe.Engine != "test" || oe.Op != offload.OpSign {
		t.Fatalf("error not an OpError for the pool: %v", g.Err())
	}
	close(b.release)
	testwait.Wait(t, f, "f")
	// The slot is freed just after the future resolves.
	testwait.Until(t, "the condition", func() bool { return p.InFlight() == 0 })
	// With a free slot NoWait is admitted.
	h := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{NoWait: true}, Work: func(struct{}) (int, error) { return 3, nil }})
	if v, err := testwait.Wait(t, h, "h"); v != 3 || err != nil {
		t.Fatalf("NoWait with a free slot: %v, %v", v, err)
	}
}

func TestSubmitContextAlreadyDone(t *testing.T) {
	p := newPool(t, Config[struct{}]{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := Submit(p, ctx, Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { t.Error("ran"); return 0, nil }})
	if !errors.Is(f.Err(), context.Canceled) {
		t.Fatalf("Err = %v", f.Err())
	}
}

func TestCancelWhileQueued(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 2})
	b := newBlocker()
	first := Submit(p, context.Background(), b.op(1))
	b.wait(t)
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Bool
	queued := Submit(p, ctx, Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { ran.Store(true); return 2, nil }})
	cancel()
	if _, err := testwait.Wait(t, queued, "queued"); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued request after cancel = %v", err)
	}
	close(b.release)
	testwait.Wait(t, first, "first")
	testwait.Until(t, "the condition", func() bool { return p.InFlight() == 0 })
	if ran.Load() {
		t.Fatal("work of a request cancelled while queued ran")
	}
	s := p.Stats().Op(offload.OpSign)
	if s.Failed != 1 || s.Completed != 1 || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCancelWhileRunning(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 1})
	b := newBlocker()
	released := make(chan int, 1)
	o := b.op(7)
	o.Release = func(v int) { released <- v }
	ctx, cancel := context.WithCancel(context.Background())
	f := Submit(p, ctx, o)
	b.wait(t)
	cancel()
	// Resolves at once, while the work still runs.
	if _, err := testwait.Wait(t, f, "f"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	if p.InFlight() != 1 {
		t.Fatalf("slot freed while the work runs: InFlight %d", p.InFlight())
	}
	close(b.release)
	if v := testwait.Recv(t, released, "the released result"); v != 7 {
		t.Fatalf("Release got %d", v)
	}
	testwait.Until(t, "the condition", func() bool { return p.InFlight() == 0 })
	// The late result is never delivered.
	if v, err := f.Poll(); v != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("after late result: %v, %v", v, err)
	}
	// The slot is usable again.
	g := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{NoWait: true}, Work: func(struct{}) (int, error) { return 1, nil }})
	if _, err := testwait.Wait(t, g, "g"); err != nil {
		t.Fatal(err)
	}
}

func TestCloseFailsQueuedAndParked(t *testing.T) {
	leaks := leakcheck.Check(t)
	p := New(Config[struct{}]{Name: "test", Workers: 1, MaxInFlight: 8, Inject: injectFunc(func(op offload.Op, _ *offload.Key) Outcome { return Outcome{Drop: op == offload.OpRandom} })})
	b := newBlocker()
	running := Submit(p, context.Background(), b.op(1))
	b.wait(t)
	var queuedRan atomic.Bool
	queued := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { queuedRan.Store(true); return 2, nil }})
	dropped := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpRandom, Work: func(struct{}) (int, error) { return 3, nil }})

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	testwait.Until(t, "the condition", p.Closed)
	// Close waits for the work in progress.
	select {
	case <-closed:
		t.Fatal("Close returned while work was running")
	default:
	}
	close(b.release)
	testwait.Recv(t, closed, "Close")
	if v, err := running.Poll(); v != 1 || err != nil {
		t.Fatalf("running work: %v, %v", v, err)
	}
	for name, f := range map[string]*offload.Future[int]{"queued": queued, "dropped": dropped} {
		if _, err := f.Poll(); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if queuedRan.Load() {
		t.Error("queued work ran after Close")
	}
	after := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { return 0, nil }})
	if !errors.Is(after.Err(), offload.ErrClosed) {
		t.Errorf("Submit after Close: %v", after.Err())
	}
	p.Close() // a second Close does nothing
	if p.InFlight() != 0 {
		t.Errorf("InFlight after Close = %d", p.InFlight())
	}
	leaks()
}

func TestCloseFailsDelayed(t *testing.T) {
	leaks := leakcheck.Check(t)
	p := New(Config[struct{}]{Name: "test", Workers: 2, MaxInFlight: 4, Inject: fixed(Outcome{Delay: time.Hour})})
	released := make(chan int, 2)
	fs := []*offload.Future[int]{
		Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { return 1, nil }, Release: func(v int) { released <- v }}),
		Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true}, Work: func(struct{}) (int, error) { return 2, nil }}),
	}
	testwait.Until(t, "the condition", func() bool { p.parkedMu.Lock(); defer p.parkedMu.Unlock(); return len(p.parked) == 2 })
	for _, f := range fs {
		if _, err := f.Poll(); err != offload.ErrNotReady {
			t.Fatalf("delayed result delivered early: %v", err)
		}
	}
	p.Close()
	for i, f := range fs {
		if _, err := f.Poll(); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("delayed %d after Close: %v", i, err)
		}
	}
	leaks()
}

// TestCloseFailsLateDelayed: a result whose delivery, held back by an
// injected delay, comes from the device after Close has gathered the
// parked requests fails with ErrClosed at once (its result released)
// instead of holding Close for the whole delay.
func TestCloseFailsLateDelayed(t *testing.T) {
	leaks := leakcheck.Check(t)
	p := New(Config[struct{}]{Name: "test", Workers: 1, MaxInFlight: 2, Inject: fixed(Outcome{Delay: time.Hour})})
	dones := make(chan func(int, error), 1)
	released := make(chan int, 1)
	f := Submit(p, context.Background(), Op[struct{}, int]{
		Kind:    offload.OpDecrypt,
		Start:   func(_ bool, done func(int, error)) error { dones <- done; return nil },
		Release: func(v int) { released <- v },
	})
	done := testwait.Recv(t, dones, "the submission")
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	testwait.Until(t, "Close to begin", p.Closed)
	// Close then gathers what is parked, which this request is not yet, and
	// waits for it; the pause lets it get there before the device answers
	// (should it not, the request is gathered instead, and fails the same).
	time.Sleep(20 * time.Millisecond)
	done(42, nil)
	testwait.Recv(t, closed, "Close with a late delayed result")
	if _, err := f.Poll(); !errors.Is(err, offload.ErrClosed) {
		t.Errorf("late delayed result after Close: %v", err)
	}
	if v := testwait.Recv(t, released, "the released result"); v != 42 {
		t.Errorf("released %d", v)
	}
	leaks()
}

func TestNotReadyRequeues(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 2, Inject: fixed(Outcome{Spins: 3})})
	gate := make(chan struct{})
	var calls atomic.Int32
	// Inline is ignored with NotReady: were it run inline, Submit would
	// block on gate, which only opens after Submit returns.
	f := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true},
		Work: func(struct{}) (int, error) { <-gate; calls.Add(1); return 4, nil }})
	close(gate)
	if v, err := testwait.Wait(t, f, "f"); v != 4 || err != nil {
		t.Fatalf("Wait = %v, %v", v, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("work ran %d times", calls.Load())
	}
}

func TestNotReadyCancelled(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 2, Inject: fixed(Outcome{Spins: 1 << 30})})
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Bool
	f := Submit(p, ctx, Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { ran.Store(true); return 0, nil }})
	cancel()
	if _, err := testwait.Wait(t, f, "f"); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	testwait.Until(t, "the condition", func() bool { return p.InFlight() == 0 })
	if ran.Load() {
		t.Fatal("work ran after cancel")
	}
}

func TestFaultEveryNth(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 2, MaxInFlight: 2, Inject: everyNth(3, errBoom)})
	var ran atomic.Int32
	for i := 1; i <= 9; i++ {
		f := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: i%2 == 0},
			Work: func(struct{}) (int, error) { ran.Add(1); return i, nil }})
		v, err := testwait.Wait(t, f, "f")
		if i%3 == 0 {
			var oe *offload.OpError
			if !errors.Is(err, errBoom) || !errors.As(err, &oe) {
				t.Fatalf("request %d: %v, want the injected error in an OpError", i, err)
			}
			continue
		}
		if v != i || err != nil {
			t.Fatalf("request %d: %v, %v", i, v, err)
		}
	}
	if ran.Load() != 6 {
		t.Fatalf("work ran %d times, want 6", ran.Load())
	}
	if s := p.Stats().Op(offload.OpSign); s.Failed != 3 || s.Completed != 6 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDropResolvesOnlyOnContextEnd(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 4, Inject: injectFunc(func(op offload.Op, _ *offload.Key) Outcome { return Outcome{Drop: op == offload.OpRandom} })})
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Bool
	dropped := Submit(p, ctx, Op[struct{}, int]{Kind: offload.OpRandom, Call: offload.Call{Inline: true},
		Work: func(struct{}) (int, error) { ran.Store(true); return 1, nil }})
	// Later work finishes; the dropped one stays pending and holds its slot.
	for range 5 {
		f := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { return 2, nil }})
		if _, err := testwait.Wait(t, f, "f"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dropped.Poll(); err != offload.ErrNotReady {
		t.Fatalf("dropped request resolved: %v", err)
	}
	if p.InFlight() != 1 {
		t.Fatalf("InFlight = %d, want the dropped request's slot", p.InFlight())
	}
	cancel()
	if _, err := testwait.Wait(t, dropped, "dropped"); !errors.Is(err, context.Canceled) {
		t.Fatalf("dropped after cancel: %v", err)
	}
	testwait.Until(t, "the condition", func() bool { return p.InFlight() == 0 })
	if ran.Load() {
		t.Fatal("dropped work ran")
	}
	// A dropped request with a context that never ends resolves at Close.
	forever := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpRandom, Work: func(struct{}) (int, error) { return 1, nil }})
	p.Close()
	if !errors.Is(forever.Err(), offload.ErrClosed) {
		t.Fatalf("dropped at Close: %v", forever.Err())
	}
}

func TestConcurrentCancelRace(t *testing.T) {
	leaks := leakcheck.Check(t)
	p := New(Config[struct{}]{Name: "test", Workers: 2, MaxInFlight: 8, Inject: injectFunc(func(offload.Op, *offload.Key) Outcome { return Outcome{Delay: rand.N(200 * time.Microsecond)} })})
	var delivered, releasedN atomic.Int32
	var wg sync.WaitGroup
	for i := range 400 {
		ctx, cancel := context.WithCancel(context.Background())
		f := Submit(p, ctx, Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: i%3 == 0},
			Work:    func(struct{}) (int, error) { return i, nil },
			Release: func(int) { releasedN.Add(1) }})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				cancel()
			}
			var v int
			var err error
			select {
			case <-f.Done():
				v, err = f.Poll()
			case <-time.After(20 * time.Second):
				t.Errorf("request %d never resolved", i)
				return
			}
			if err == nil {
				if v != i {
					t.Errorf("request %d got %d", i, v)
				}
				delivered.Add(1)
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("request %d: %v", i, err)
			}
			cancel()
		}()
	}
	finishes(t, "the waiting callers", wg.Wait)
	p.Close()
	if p.InFlight() != 0 {
		t.Fatalf("InFlight after Close = %d", p.InFlight())
	}
	s := p.Stats().Op(offload.OpSign)
	if s.Submitted != 400 || s.Completed+s.Failed != 400 || s.Completed != uint64(delivered.Load()) {
		t.Fatalf("stats %+v, delivered %d", s, delivered.Load())
	}
	leaks()
}

func BenchmarkSubmit(b *testing.B) {
	for _, bc := range []struct {
		name   string
		inline bool
	}{{"inline", true}, {"worker", false}} {
		b.Run(bc.name, func(b *testing.B) {
			p := New(Config[struct{}]{Name: "bench", Workers: 1, MaxInFlight: 4})
			defer p.Close()
			ctx := context.Background()
			o := Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: bc.inline}, Work: func(struct{}) (int, error) { return 1, nil }}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Submit(p, ctx, o).Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A panic in an engine's work fails that operation, frees its slot and
// leaves Close able to finish, on both the inline and the worker path.
func TestWorkPanics(t *testing.T) {
	p := New(Config[struct{}]{Name: "panicky", Workers: 1, MaxInFlight: 1})
	for _, inline := range []bool{true, false} {
		f := Submit(p, context.Background(), Op[struct{}, int]{
			Kind: offload.OpSign,
			Call: offload.Call{Inline: inline},
			Work: func(struct{}) (int, error) { panic("boom") },
		})
		_, err := testwait.Wait(t, f, "f")
		if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
			t.Fatalf("inline=%v: err = %v", inline, err)
		}
		if n := p.InFlight(); n != 0 {
			t.Fatalf("inline=%v: %d in flight after a panic", inline, n)
		}
	}
	p.Close()
}

// Close waits for work running on a caller's goroutine, and a blocking call
// that comes after Close fails with ErrClosed and holds no slot.
func TestCloseWaitsForInlineWork(t *testing.T) {
	p := New(Config[struct{}]{Name: "inline", Workers: 1, MaxInFlight: 2})
	started, release := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		f := Submit(p, context.Background(), Op[struct{}, int]{
			Kind: offload.OpSign,
			Call: offload.Call{Inline: true},
			Work: func(struct{}) (int, error) { close(started); <-release; return 1, nil },
		})
		_, err := f.Wait(context.Background())
		result <- err
	}()
	testwait.Recv(t, started, "the inline work started")
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while inline work was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-result; err != nil {
		t.Fatalf("inline work begun before Close: %v", err)
	}
	testwait.Recv(t, closed, "Close")
	f := Submit(p, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true}, Work: func(struct{}) (int, error) { return 1, nil }})
	if _, err := testwait.Wait(t, f, "f"); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if n := p.InFlight(); n != 0 {
		t.Fatalf("%d slots held after Close", n)
	}
}

// finishes fails the test if f does not return within a generous bound: it
// detects hangs, it does not time anything.
func finishes(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	testwait.Recv(t, done, what)
}

// Several Close calls at once all return, once the first has finished.
func TestConcurrentClose(t *testing.T) {
	for range 20 {
		p := New(Config[struct{}]{Name: "test", Workers: 2, MaxInFlight: 64})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); p.Close() }()
		}
		finishes(t, "concurrent Close", wg.Wait)
	}
}

// A dropped request submitted while the pool closes is failed by Close, not
// left holding Close for ever; a context ending meanwhile races cleanly.
func TestDropRacesClose(t *testing.T) {
	drop := fixed(Outcome{Drop: true})
	for i := range 50 {
		p := New(Config[struct{}]{Name: "test", Workers: 1, MaxInFlight: 8, Inject: drop})
		ctx, cancel := context.WithCancel(context.Background())
		var fs []*offload.Future[int]
		var mu sync.Mutex
		var wg sync.WaitGroup
		for k := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := context.Background()
				if k%2 == 1 {
					c = ctx
				}
				f := Submit(p, c, Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { return 1, nil }})
				mu.Lock()
				fs = append(fs, f)
				mu.Unlock()
			}()
		}
		if i%2 == 0 {
			go cancel()
		}
		finishes(t, "Close with dropped requests", p.Close)
		wg.Wait()
		cancel()
		for _, f := range fs {
			if _, err := testwait.Wait(t, f, "f"); err == nil {
				t.Fatal("a dropped request succeeded")
			}
		}
	}
}

// A result held back by injected latency when the pool closes is never
// delivered, so it goes to Release.
func TestCloseReleasesHeldResult(t *testing.T) {
	p := New(Config[struct{}]{Name: "test", Workers: 1, MaxInFlight: 2, Inject: fixed(Outcome{Delay: time.Hour})})
	released := make(chan int, 1)
	f := Submit(p, context.Background(), Op[struct{}, int]{
		Kind:    offload.OpDecrypt,
		Work:    func(struct{}) (int, error) { return 42, nil },
		Release: func(v int) { released <- v },
	})
	testwait.Until(t, "the condition", func() bool {
		p.parkedMu.Lock()
		defer p.parkedMu.Unlock()
		return len(p.parked) == 1
	})
	p.Close()
	if _, err := testwait.Wait(t, f, "f"); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("held result after Close: %v", err)
	}
	select {
	case v := <-released:
		if v != 42 {
			t.Fatalf("released %d", v)
		}
	default:
		t.Fatal("the held result was not released")
	}
}

// With injected latency a blocking request does not run on the caller's
// goroutine: its inputs are detached first, because its result is held
// back past the point where the caller may give up on it.
func TestInlineWithLatencyIsDetached(t *testing.T) {
	p := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 2, Inject: fixed(Outcome{Delay: time.Millisecond})})
	var detached atomic.Bool
	f := Submit(p, context.Background(), Op[struct{}, int]{
		Kind:   offload.OpCipher,
		Call:   offload.Call{Inline: true},
		Work:   func(struct{}) (int, error) { return 1, nil },
		Detach: func() { detached.Store(true) },
	})
	if _, err := testwait.Wait(t, f, "f"); err != nil {
		t.Fatal(err)
	}
	if !detached.Load() {
		t.Fatal("a request with injected latency ran without Detach")
	}
}
