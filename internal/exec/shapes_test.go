package exec

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

// session is the device state a worker owns in the shape-b tests: a
// numbered session that recovery replaces.
type session struct {
	id     int
	gen    int // bumped by each rebuild
	broken bool
}

// device counts Prepare and Recover calls; Recover rebuilds a session when
// the error is errLost, and says so.
type device struct {
	prepared, recovered atomic.Int32
	rebuildErr          error
}

var errLost = errors.New("session lost")

func (d *device) Prepare(s *session, probe bool) error {
	d.prepared.Add(1)
	return nil
}

func (d *device) Recover(s *session, probe bool, err error) (bool, error) {
	d.recovered.Add(1)
	if !errors.Is(err, errLost) {
		return false, err
	}
	if d.rebuildErr != nil {
		return false, errors.Join(err, d.rebuildErr)
	}
	s.gen++
	s.broken = false
	return true, err
}

func newStateful(t *testing.T, n int, d *device, gate Gate[*session]) *Executor[*session] {
	t.Helper()
	states := make([]*session, n)
	for i := range states {
		states[i] = &session{id: i}
	}
	x := New(Config[*session]{Name: "dev", MaxInFlight: n, States: states, Device: d, Gate: gate})
	t.Cleanup(x.Close)
	return x
}

// Shape b: work runs on a worker with its own state; a failure that the
// device recovers from is retried once when the work may repeat and the
// caller still waits, and not otherwise.
func TestRecoveryRetry(t *testing.T) {
	tests := []struct {
		name       string
		repeat     bool
		failures   int   // how many calls fail with errLost before one succeeds
		cancel     bool  // the caller gives up during the first call
		rebuildErr error // recovery fails
		wantCalls  int32
		wantErr    error
	}{
		{"retried once", true, 1, false, nil, 2, nil},
		{"retried only once", true, 2, false, nil, 2, errLost},
		{"unsafe work not retried", false, 1, false, nil, 1, errLost},
		{"caller gone: not retried", true, 1, true, nil, 1, context.Canceled},
		{"recovery failed: not retried", true, 1, false, errBoom, 1, errBoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &device{rebuildErr: tc.rebuildErr}
			x := newStateful(t, 1, d, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls atomic.Int32
			var gens []int
			fch := make(chan *offload.Future[int], 1)
			f := Submit(x, ctx, Op[*session, int]{Kind: offload.OpSign, Repeat: tc.repeat,
				Work: func(s *session) (int, error) {
					n := calls.Add(1)
					gens = append(gens, s.gen) // only this worker touches gens
					if tc.cancel && n == 1 {
						f := <-fch
						cancel()
						<-f.Done() // the caller has been answered
					}
					if int(n) <= tc.failures {
						return 0, errLost
					}
					return s.id + 10, nil
				}})
			fch <- f
			v, err := testwait.Wait(t, f, tc.name)
			if tc.wantErr == nil && (err != nil || v != 10) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("result %v, %v; want error %v", v, err, tc.wantErr)
			}
			x.Close()
			if got := calls.Load(); got != tc.wantCalls {
				t.Fatalf("work ran %d times, want %d", got, tc.wantCalls)
			}
			if tc.wantCalls == 2 && (gens[0] != 0 || gens[1] != 1) {
				t.Fatalf("the retry did not run on the rebuilt state: generations %v", gens)
			}
			if d.prepared.Load() != 1 {
				t.Fatalf("Prepare ran %d times", d.prepared.Load())
			}
			if want := uint64(tc.wantCalls - 1); x.Retried() != want {
				t.Fatalf("Retried = %d, want %d", x.Retried(), want)
			}
		})
	}
}

// A state is held by one goroutine at a time: two requests running at once
// on workers see two different states.
func TestStatesHeldOnce(t *testing.T) {
	x := newStateful(t, 2, &device{}, nil)
	var mu sync.Mutex
	seen := map[int]bool{}
	both := make(chan struct{})
	var arrived atomic.Int32
	var fs []*offload.Future[int]
	for range 2 {
		fs = append(fs, Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign,
			Work: func(s *session) (int, error) {
				mu.Lock()
				seen[s.id] = true
				mu.Unlock()
				if arrived.Add(1) == 2 {
					close(both)
				}
				<-both // both requests are running at once
				return s.id, nil
			}}))
	}
	for _, f := range fs {
		if _, err := testwait.Wait(t, f, "stateful request"); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("two concurrent requests ran on states %v", seen)
	}
}

// A blocking request (Call.Inline) on workers that own device state runs on
// the caller's goroutine when a slot and a state are both free at once,
// readied, gated and recovered as on a worker; when every state is held (by
// a running request or a pinned stream) it keeps its slot and goes to a
// worker, NoWait or not.
func TestInlineOnDeviceState(t *testing.T) {
	tests := []struct {
		name     string
		slots    int
		hold     string // what holds the only state while the request comes: "", "request", "stream"
		noWait   bool
		failures int  // calls that fail with errLost before one succeeds
		cancel   bool // the work ends the caller's context
		wantHere bool // ran on the caller's goroutine
		wantV    int
		wantErr  error
		wantRuns int32
	}{
		{name: "free state", slots: 1, wantHere: true, wantV: 10, wantRuns: 1},
		{name: "recovered and retried inline", slots: 1, failures: 1, wantHere: true, wantV: 10, wantRuns: 2},
		{name: "retried only once", slots: 1, failures: 2, wantHere: true, wantErr: errLost, wantRuns: 2},
		{name: "context ended: not retried, result released", slots: 1, failures: 1, cancel: true, wantHere: true, wantErr: context.Canceled, wantRuns: 1},
		{name: "state held by a request", slots: 2, hold: "request", wantV: 10, wantRuns: 1},
		{name: "state held by a request, NoWait", slots: 2, hold: "request", noWait: true, wantV: 10, wantRuns: 1},
		{name: "state pinned by a stream", slots: 2, hold: "stream", wantV: 10, wantRuns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &device{}
			g := &rwGate{}
			x := New(Config[*session]{Name: "dev", MaxInFlight: tc.slots, States: []*session{{id: 10}}, Device: d, Gate: g})
			t.Cleanup(x.Close)

			release := make(chan struct{})
			var held *offload.Future[int]
			var st *Stream[*session]
			switch tc.hold {
			case "request":
				b := &blocker{started: make(chan struct{}), release: release}
				held = Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign,
					Work: func(*session) (int, error) { close(b.started); <-b.release; return 1, nil }})
				b.wait(t)
			case "stream":
				var err error
				if st, err = Pin(x, context.Background(), PinSpec[*session]{Kind: offload.OpHash}); err != nil {
					t.Fatal(err)
				}
				started := make(chan struct{})
				held = Do(st, context.Background(), Step[*session, int]{Last: true,
					Work: func(*session) (int, error) { close(started); <-release; return 1, nil }})
				testwait.Recv(t, started, "the stream's step")
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			caller := make(chan struct{})
			var runs atomic.Int32
			var here, detached atomic.Bool
			var released atomic.Int32
			done := make(chan *offload.Future[int], 1)
			go func() {
				f := Submit(x, ctx, Op[*session, int]{Kind: offload.OpSign, Repeat: true,
					Call: offload.Call{Inline: true, NoWait: tc.noWait},
					Work: func(s *session) (int, error) {
						n := runs.Add(1)
						select {
						case <-caller:
						default:
							here.Store(true) // Submit has not returned
						}
						if tc.cancel {
							cancel()
						}
						if int(n) <= tc.failures {
							return -1, errLost
						}
						return s.id, nil
					},
					Detach:  func() { detached.Store(true) },
					Release: func(int) { released.Add(1) },
				})
				// Closed before the future is handed over: queued work,
				// which runs only after that, sees it closed.
				close(caller)
				done <- f
			}()
			f := testwait.Recv(t, done, "Submit")
			if tc.hold != "" {
				if _, err := f.Poll(); err != offload.ErrNotReady {
					t.Fatalf("a request that found no free state: Poll = %v, want it queued", err)
				}
				close(release)
				if _, err := testwait.Wait(t, held, "the request holding the state"); err != nil {
					t.Fatal(err)
				}
			}
			v, err := testwait.Wait(t, f, tc.name)
			if tc.wantErr == nil && (err != nil || v != tc.wantV) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("result %v, %v; want %v, %v", v, err, tc.wantV, tc.wantErr)
			}
			if here.Load() != tc.wantHere {
				t.Fatalf("ran on the caller's goroutine: %v, want %v", here.Load(), tc.wantHere)
			}
			if detached.Load() == tc.wantHere {
				t.Fatalf("Detach called: %v; it is for requests that leave the caller's goroutine", detached.Load())
			}
			if got := runs.Load(); got != tc.wantRuns {
				t.Fatalf("work ran %d times, want %d", got, tc.wantRuns)
			}
			if want := map[bool]int32{true: 1}[tc.cancel]; released.Load() != want {
				t.Fatalf("Release ran %d times, want %d", released.Load(), want)
			}
			if d.prepared.Load() < 1 || g.entered.Load() < tc.wantRuns {
				t.Fatalf("Prepare ran %d times and the gate was entered %d times for %d calls", d.prepared.Load(), g.entered.Load(), tc.wantRuns)
			}
			if x.InFlight() != 0 {
				t.Fatalf("InFlight = %d after the request", x.InFlight())
			}
			// The state is back in the pool: the next blocking call runs here.
			var again bool
			if v, err := Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true},
				Work: func(s *session) (int, error) { again = true; return s.id, nil }}).Poll(); v != 10 || err != nil || !again {
				t.Fatalf("the next blocking call: %v, %v, ran here %v", v, err, again)
			}
		})
	}
}

// However many callers run inline, no more goroutines are inside device
// calls at once than there are states, even with more slots than states.
func TestInlineBoundedByStates(t *testing.T) {
	const states, slots, callers = 2, 8, 32
	ss := make([]*session, states)
	for i := range ss {
		ss[i] = &session{id: i}
	}
	x := New(Config[*session]{Name: "dev", MaxInFlight: slots, States: ss, Device: &device{}})
	t.Cleanup(x.Close)
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				f := Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true},
					Work: func(s *session) (int, error) {
						n := inside.Add(1)
						for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
						}
						runtime.Gosched()
						inside.Add(-1)
						return s.id, nil
					}})
				if _, err := f.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	testwait.Group(t, &wg, "the callers")
	if m := most.Load(); m > states || m < 1 {
		t.Fatalf("%d goroutines were inside device calls at once with %d states", m, states)
	}
	if s := x.Stats().Op(offload.OpSign); s.Completed != callers*50 {
		t.Fatalf("stats %+v", s)
	}
}

// The gate is held around every device call, so an engine that takes its
// other side finds no worker inside one: here a writer that holds it keeps
// requests from starting, and Recover runs outside it.
func TestGateQuiesces(t *testing.T) {
	g := &rwGate{}
	d := &device{}
	x := newStateful(t, 2, d, g)
	g.rw.Lock() // quiesced
	var ran atomic.Bool
	f := Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign, Repeat: true,
		Work: func(s *session) (int, error) {
			if ran.Swap(true) {
				return 1, nil
			}
			return 0, errLost
		}})
	// The request is admitted and queued but cannot start.
	if _, err := f.Poll(); err != offload.ErrNotReady {
		t.Fatalf("Poll while quiesced = %v", err)
	}
	if ran.Load() {
		t.Fatal("work ran while the gate was held")
	}
	g.rw.Unlock()
	if v, err := testwait.Wait(t, f, "gated request"); v != 1 || err != nil {
		t.Fatalf("after the gate opened: %v, %v", v, err)
	}
	if d.recovered.Load() != 1 {
		t.Fatalf("Recover ran %d times", d.recovered.Load())
	}
}

// rwGate is a Gate over the shared side of a readers-writer lock that
// refuses a state, as stale, the next refuse times it is entered.
type rwGate struct {
	rw      sync.RWMutex
	refuse  atomic.Int32
	entered atomic.Int32 // entries, refused ones included
}

func (g *rwGate) Enter(s *session) error {
	g.entered.Add(1)
	g.rw.RLock()
	if g.refuse.Add(-1) >= 0 {
		g.rw.RUnlock()
		return fmt.Errorf("session %d from an earlier life: %w", s.id, ErrStale)
	}
	return nil
}

func (g *rwGate) Leave(*session) { g.rw.RUnlock() }

// A state the Gate finds stale is readied again and the Gate entered again,
// even for work that may not repeat (it never reached the device), up to
// StaleTries entries; a stream's step that continues its device operation
// is not readied again: it fails with the Gate's error and ends the stream.
func TestGateStale(t *testing.T) {
	for _, tc := range []struct {
		name         string
		refuse       int32
		step         bool // a continuing step on a stream instead of a request
		wantRuns     int32
		wantPrepared int32
		wantErr      error
	}{
		{"fresh", 0, false, 1, 1, nil},
		{"stale once", 1, false, 1, 2, nil},
		{"stale up to the bound", StaleTries - 1, false, 1, StaleTries, nil},
		{"stale beyond the bound", StaleTries, false, 0, StaleTries, ErrStale},
		{"continuing step", 1, true, 0, 0, ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &rwGate{}
			d := &device{}
			x := newStateful(t, 1, d, g)
			var runs atomic.Int32
			work := func(s *session) (int, error) { runs.Add(1); return 7, nil }
			var f *offload.Future[int]
			if tc.step {
				st, err := Pin(x, context.Background(), PinSpec[*session]{Kind: offload.OpHash})
				if err != nil {
					t.Fatal(err)
				}
				g.refuse.Store(tc.refuse)
				f = Do(st, context.Background(), Step[*session, int]{Work: work})
			} else {
				g.refuse.Store(tc.refuse)
				f = Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign, Work: work})
			}
			v, err := testwait.Wait(t, f, tc.name)
			if tc.wantErr == nil && (err != nil || v != 7) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("result %v, %v; want error %v", v, err, tc.wantErr)
			}
			x.Close()
			if got := runs.Load(); got != tc.wantRuns {
				t.Fatalf("work ran %d times, want %d", got, tc.wantRuns)
			}
			if got := d.prepared.Load(); got != tc.wantPrepared {
				t.Fatalf("Prepare ran %d times, want %d", got, tc.wantPrepared)
			}
			if x.Retried() != 0 {
				t.Fatalf("a refused entry counted as a retry: %d", x.Retried())
			}
		})
	}
}

// A panic in engine work fails the request with a short message that names
// the panic, and keeps the stack out of it.
func TestPanicMessageIsShort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		submit func(x *Executor[struct{}]) *offload.Future[int]
	}{
		{"inline", func(x *Executor[struct{}]) *offload.Future[int] {
			return Submit(x, context.Background(), Op[struct{}, int]{Kind: offload.OpSign, Call: offload.Call{Inline: true},
				Work: func(struct{}) (int, error) { panic("kaboom") }})
		}},
		{"worker", func(x *Executor[struct{}]) *offload.Future[int] {
			return Submit(x, context.Background(), Op[struct{}, int]{Kind: offload.OpSign,
				Work: func(struct{}) (int, error) { panic("kaboom") }})
		}},
		{"start", func(x *Executor[struct{}]) *offload.Future[int] {
			return Submit(x, context.Background(), Op[struct{}, int]{Kind: offload.OpSign,
				Start: func(bool, func(int, error)) error { panic("kaboom") }})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 1})
			_, err := testwait.Wait(t, tc.submit(x), "panicking request")
			var pe *PanicError
			if !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
				t.Fatalf("err = %v", err)
			}
			if msg := err.Error(); msg != "test sign: engine work panicked: kaboom" || strings.Contains(msg, "goroutine") {
				t.Fatalf("message %q", msg)
			}
			if x.InFlight() != 0 {
				t.Fatal("a slot is still held after the panic")
			}
		})
	}
}

// ring is a fake device that completes on its own, like a QuickAssist ring:
// Start posts a request to a ring of fixed size and returns at once (or
// answers ErrRetry when the ring is full); a poller goroutine takes
// requests off the ring and runs their completions.
type ring struct {
	posted chan func()
	run    chan struct{} // the poller runs only while it can receive from here
	quit   chan struct{}
	done   chan struct{}
	starts atomic.Int32 // Start calls, retries included
}

func newRing(size int) *ring {
	r := &ring{posted: make(chan func(), size), run: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
	go r.poll()
	return r
}

func (r *ring) poll() {
	defer close(r.done)
	for {
		select {
		case <-r.quit:
			return
		case <-r.run:
		}
		select {
		case c := <-r.posted:
			c()
		default:
		}
	}
}

// resume lets the poller run until stop.
func (r *ring) resume() (stop func()) {
	halt := make(chan struct{})
	go func() {
		for {
			select {
			case r.run <- struct{}{}:
			case <-halt:
				return
			}
		}
	}()
	return func() { close(halt) }
}

func (r *ring) close() {
	close(r.quit)
	<-r.done
}

// op returns a request that doubles v on the ring.
func (r *ring) op(v int, release func(int)) Op[struct{}, int] {
	return Op[struct{}, int]{Kind: offload.OpCipher, Release: release,
		Start: func(_ bool, done func(int, error)) error {
			r.starts.Add(1)
			select {
			case r.posted <- func() { done(2*v, nil) }:
				return nil
			default:
				return ErrRetry
			}
		}}
}

// Shape c: requests complete from the poller's goroutine; a full ring is
// retried up to the bound and then fails with ErrBusy; a result that loses
// to its caller's context is released; Close waits for what the device has.
func TestDeviceCompletesOnItsOwn(t *testing.T) {
	r := newRing(2)
	defer r.close()
	x := New(Config[struct{}]{Name: "ring", MaxInFlight: 8, Resubmit: 3})
	// The poller is stopped: two requests fill the ring and wait there.
	ctx, cancel := context.WithCancel(context.Background())
	released := make(chan int, 1)
	a := Submit(x, context.Background(), r.op(1, nil))
	b := Submit(x, ctx, r.op(2, func(v int) { released <- v }))
	for _, f := range []*offload.Future[int]{a, b} {
		if _, err := f.Poll(); err != offload.ErrNotReady {
			t.Fatalf("a posted request resolved before the poller ran: %v", err)
		}
	}
	// The third finds the ring full on its first try and three retries.
	before := r.starts.Load()
	c := Submit(x, context.Background(), r.op(3, nil))
	if _, err := c.Poll(); !errors.Is(err, offload.ErrBusy) {
		t.Fatalf("a request to a full ring: %v", err)
	}
	if n := r.starts.Load() - before; n != 4 {
		t.Fatalf("a full ring was tried %d times, want 1 + 3 retries", n)
	}
	// b's caller gives up: its future resolves at once, and the device's
	// late result is released once the device is done with it.
	cancel()
	if _, err := testwait.Wait(t, b, "cancelled ring request"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	select {
	case v := <-released:
		t.Fatalf("released %d before the device answered", v)
	default:
	}
	stop := r.resume()
	if v, err := testwait.Wait(t, a, "ring request"); v != 2 || err != nil {
		t.Fatalf("a = %v, %v", v, err)
	}
	if v := testwait.Recv(t, released, "the lost result released"); v != 4 {
		t.Fatalf("released %d", v)
	}
	// Many at once, completing on the poller.
	var fs []*offload.Future[int]
	for i := range 50 {
		fs = append(fs, Submit(x, context.Background(), r.op(i, nil)))
	}
	// A request still with the device when Close begins finishes: Close
	// waits for it.
	closed := make(chan struct{})
	go func() { x.Close(); close(closed) }()
	for i, f := range fs {
		v, err := testwait.Wait(t, f, "ring burst")
		if err != nil && !errors.Is(err, offload.ErrBusy) && !errors.Is(err, offload.ErrClosed) || err == nil && v != 2*i {
			t.Fatalf("request %d: %v, %v", i, v, err)
		}
	}
	testwait.Recv(t, closed, "Close")
	stop()
	if x.InFlight() != 0 {
		t.Fatalf("%d slots held after Close", x.InFlight())
	}
	s := x.Stats().Op(offload.OpCipher)
	if s.InFlight != 0 || s.Submitted != s.Completed+s.Failed {
		t.Fatalf("stats %+v", s)
	}
}

// A stream's steps run in order on one worker, which serves nothing else
// until the stream is over; the Last step's caller sees the slot freed.
func TestStreamOrderAndPinning(t *testing.T) {
	x := newStateful(t, 2, &device{}, nil)
	var cleaned atomic.Int32
	st, err := Pin(x, context.Background(), PinSpec[*session]{Kind: offload.OpHash,
		Cleanup: func(*session) { cleaned.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	var order []int // appended only on the pinned worker
	var ids sync.Map
	var fs []*offload.Future[int]
	for i := range 20 {
		fs = append(fs, Do(st, context.Background(), Step[*session, int]{Last: i == 19,
			Work: func(s *session) (int, error) {
				order = append(order, i)
				ids.Store(s.id, true)
				return i, nil
			}}))
	}
	// Meanwhile the other worker serves ordinary requests.
	for range 5 {
		f := Submit(x, context.Background(), Op[*session, int]{Kind: offload.OpSign,
			Work: func(s *session) (int, error) { return s.id, nil }})
		if _, err := testwait.Wait(t, f, "request beside a stream"); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range fs {
		if v, err := testwait.Wait(t, f, "step"); v != i || err != nil {
			t.Fatalf("step %d: %v, %v", i, v, err)
		}
	}
	if x.InFlight() != 0 {
		t.Fatal("the stream's slot was not free when its last step resolved")
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("steps ran in order %v", order)
		}
	}
	n := 0
	ids.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("a stream's steps ran on %d workers", n)
	}
	if cleaned.Load() != 1 {
		t.Fatalf("Cleanup ran %d times", cleaned.Load())
	}
	if err := Do(st, context.Background(), Step[*session, int]{Work: func(*session) (int, error) { return 0, nil }}).Err(); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("a step after the last: %v", err)
	}
	if s := x.Stats().Op(offload.OpHash); s.Submitted != 1 || s.Completed != 1 {
		t.Fatalf("the stream's stats %+v", s)
	}
}

// A stream ends at a failed or abandoned step, at End and at Close; steps
// waiting then fail with the reason, a running one finishes, and the
// worker's cleanup runs.
func TestStreamEnds(t *testing.T) {
	tests := []struct {
		name    string
		end     func(t *testing.T, x *Executor[*session], st *Stream[*session], cancel context.CancelFunc, running chan struct{})
		wantErr error // of the step queued behind the running one
	}{
		{"step fails", nil, errBoom},
		{"caller cancels while running", func(t *testing.T, x *Executor[*session], st *Stream[*session], cancel context.CancelFunc, _ chan struct{}) {
			cancel()
			testwait.Until(t, "the condition", func() bool { return st.Err() != nil }) // the context's watch ends the stream
		}, context.Canceled},
		{"End", func(t *testing.T, x *Executor[*session], st *Stream[*session], _ context.CancelFunc, _ chan struct{}) {
			st.End(errBoom)
		}, errBoom},
		{"Close", func(t *testing.T, x *Executor[*session], st *Stream[*session], _ context.CancelFunc, running chan struct{}) {
			go x.Close()
			testwait.Until(t, "the condition", x.Closed)
		}, offload.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newStateful(t, 1, &device{}, nil)
			var cleaned atomic.Int32
			st, err := Pin(x, context.Background(), PinSpec[*session]{Kind: offload.OpHash, Cleanup: func(*session) { cleaned.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			running, release := make(chan struct{}), make(chan struct{})
			released := make(chan int, 1)
			first := Do(st, ctx, Step[*session, int]{Release: func(v int) { released <- v },
				Work: func(*session) (int, error) {
					close(running)
					<-release
					if tc.end == nil {
						return 0, errBoom
					}
					return 7, nil
				}})
			var ranSecond atomic.Bool
			second := Do(st, context.Background(), Step[*session, int]{Work: func(*session) (int, error) { ranSecond.Store(true); return 1, nil }})
			testwait.Recv(t, running, "the first step running")
			if tc.end != nil {
				tc.end(t, x, st, cancel, running)
			}
			close(release)
			v, err := testwait.Wait(t, first, "running step")
			switch tc.name {
			case "caller cancels while running":
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("running step: %v, %v", v, err)
				}
				if got := testwait.Recv(t, released, "the released result"); got != 7 {
					t.Fatalf("released %d", got)
				}
			case "step fails":
				if !errors.Is(err, errBoom) {
					t.Fatalf("failing step: %v", err)
				}
			default:
				if v != 7 || err != nil {
					t.Fatalf("a running step must finish: %v, %v", v, err)
				}
			}
			if _, err := testwait.Wait(t, second, "queued step"); !errors.Is(err, tc.wantErr) {
				t.Fatalf("queued step: %v, want %v", err, tc.wantErr)
			}
			if ranSecond.Load() {
				t.Fatal("a step queued behind the end ran")
			}
			x.Close()
			if cleaned.Load() != 1 || x.InFlight() != 0 {
				t.Fatalf("cleanup ran %d times, %d slots held", cleaned.Load(), x.InFlight())
			}
		})
	}
}

// A stream no worker took yet when Close begins fails, and so does Pin
// after Close; Pin honours its context while the executor is full.
func TestStreamAdmission(t *testing.T) {
	x := newStateful(t, 1, &device{}, nil)
	st, err := Pin(x, context.Background(), PinSpec[*session]{Kind: offload.OpHash})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := Pin(x, ctx, PinSpec[*session]{Kind: offload.OpHash}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pin on a full executor: %v", err)
	}
	x.Close()
	if err := st.Err(); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("an idle stream after Close: %v", err)
	}
	if _, err := Pin(x, context.Background(), PinSpec[*session]{Kind: offload.OpHash}); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("Pin after Close: %v", err)
	}
}

// A request parked by injection (dropped or delayed) resolves when its
// context ends, and one of each kind fails with ErrClosed at Close.
func TestParked(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  Outcome
	}{{"dropped", Outcome{Drop: true}}, {"delayed", Outcome{Delay: time.Hour}}} {
		t.Run(tc.name, func(t *testing.T) {
			x := newPool(t, Config[struct{}]{Workers: 1, MaxInFlight: 4, Inject: fixed(tc.out)})
			ctx, cancel := context.WithCancel(context.Background())
			work := Op[struct{}, int]{Kind: offload.OpSign, Work: func(struct{}) (int, error) { return 1, nil }}
			a := Submit(x, ctx, work)
			b := Submit(x, context.Background(), work)
			cancel()
			if _, err := testwait.Wait(t, a, "parked, cancelled"); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled: %v", err)
			}
			x.Close()
			if _, err := testwait.Wait(t, b, "parked at Close"); !errors.Is(err, offload.ErrClosed) {
				t.Fatalf("at Close: %v", err)
			}
			if x.InFlight() != 0 {
				t.Fatal("slots held after Close")
			}
		})
	}
}
