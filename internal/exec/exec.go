// Package exec owns the life of every engine request, whatever the device
// behind it: admission against the in-flight limit (offload.Call.NoWait
// answers offload.ErrBusy), a first-wins delivery to the caller's future
// (the device's answer, the end of the caller's context, or Close), the
// release of a result that lost that race once the device is done with it,
// statistics, and Close (queued requests fail with offload.ErrClosed,
// running ones finish, workers stop). An engine supplies only its device
// binding; the lifecycle is written here once.
//
// # Three shapes of device
//
// In-process work (the software engine). Op.Work runs on a pool of worker
// goroutines, or, when the request sets offload.Call.Inline (its caller
// waits for the result at once) and a slot is free at once, on the caller's
// goroutine before Submit returns: no job, no promise, no hand-off, and a
// context that ends while the work runs still decides the outcome (see
// Submit). Config.Workers sets the pool's size.
//
// Workers that own device state (a PKCS #11 session per worker, a TPM's one
// transport). Config.States gives the device states, one worker goroutine
// per state, and Op.Work receives the state it runs on. A state is held by
// one goroutine at a time, from a pool: a worker takes one for each request
// it runs and puts it back when the work is done, and a request with
// Call.Inline that finds a slot and a state free at once takes them and
// runs on the caller's goroutine, as in-process work does (no hand-off; see
// Submit). Either way at most len(States) goroutines are inside device calls
// at once, so callers that wait for a state or a slot are parked goroutines,
// not OS threads. Config.Device may ready a state
// before each call (Prepare) and rebuild it after a failure (Recover); when
// it rebuilt it, the op is marked Repeat and its caller still waits, the
// work runs once more on the rebuilt state. Config.Gate, when set, is held
// around every device call, so an engine can quiesce all its workers (no
// worker inside a call) while it rebuilds state they share, by taking the
// other side of the lock; the gate may also refuse a state that such a
// rebuild outdated after Prepare (ErrStale), and the state is then readied
// again before the work runs. Pin hands one worker to a Stream: a sequence of
// steps that run in order on that worker's state (a PKCS #11 digest held
// by one session), until the stream ends and the worker goes back to the
// pool.
//
// Devices that complete on their own (QuickAssist's rings). Op.Start submits
// the request and returns at once; the device reports the result later,
// from any goroutine (a poller), by calling the function Start was given.
// Start may answer ErrRetry when the device is full: the submission is
// tried again, up to Config.Resubmit times, before the request fails with
// offload.ErrBusy.
//
// # Fault injection
//
// Config.Inject, when set, decides per request whether it fails at once,
// vanishes (is dropped: its future resolves only when its context ends or
// Close), goes round the queue some times before it runs, or has its result
// held back for a delay after the work is done, keeping its slot meanwhile,
// as a slow device would. The same mechanism serves every shape.
package exec

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// ErrRetry is what an Op.Start answers when the device cannot take the
// request now (its ring is full) and the submission should be tried again.
var ErrRetry = errors.New("exec: device full, retry")

// DefaultResubmit is the number of times a submission that answered
// ErrRetry is tried again when Config.Resubmit is 0.
const DefaultResubmit = 64

// ErrStale is what a Gate's Enter answers (wrapped) for a worker state that
// is outdated: something the states share was rebuilt after the state was
// readied, and the device would not accept it any more. Nothing was called
// on the device, so the executor readies the state again (Device.Prepare)
// and enters again, up to StaleTries times in all, whether or not the work
// may Repeat; a step that continues a stream's device operation fails with
// Enter's error instead, the operation having gone with the old state.
var ErrStale = errors.New("exec: worker state outdated")

// StaleTries bounds the entries a device call makes when the Gate keeps
// answering ErrStale; after the last, the request fails with its error.
const StaleTries = 3

// An Injector decides what fault injection does to one request. It is
// called once per admitted request, before anything else happens to it, and
// must be safe for concurrent use.
type Injector interface {
	Decide(op offload.Op, key *offload.Key) Outcome
}

// Outcome is an Injector's decision for one request. The zero value leaves
// the request alone.
type Outcome struct {
	// Delay holds the result back this long after the work is done, with
	// the request's slot held.
	Delay time.Duration
	// Err fails the request with it without doing the work.
	Err error
	// Drop makes the request vanish: it keeps its slot and resolves only
	// when its context ends or the executor closes.
	Drop bool
	// Spins sends the request back to the end of the queue this many times
	// before it runs, so a caller polling it sees offload.ErrNotReady.
	Spins int
}

func (o Outcome) held() bool { return o.Delay > 0 || o.Drop || o.Spins > 0 }

// A Gate keeps the device calls of workers that own device state apart
// from rebuilds of what their states share: Enter is called before every
// device call on s (Op.Work, a stream's step and its cleanup), Leave after
// it. Enter waits while the engine holds the gate's other side. It may
// refuse to enter with an error wrapping ErrStale when s was outdated by
// such a rebuild; with any error it has not entered, and the call is not
// made.
type Gate[S any] interface {
	Enter(s S) error
	Leave(s S)
}

// A Device is the engine's side of workers that own device state (shape
// b). Both methods run on the goroutine that holds s (a worker, or an
// inline caller), outside Config.Gate.
type Device[S any] interface {
	// Prepare readies s before a device call: a worker whose session was
	// lost reopens it. An error fails the request without the call. probe
	// is the request's Op.Probe.
	Prepare(s S, probe bool) error
	// Recover is called after a device call on s failed with err. It may
	// rebuild s; it reports whether it did, so that the call may be
	// repeated, and the error to report if the call is not repeated.
	Recover(s S, probe bool, err error) (rebuilt bool, rerr error)
}

// Config configures an Executor.
type Config[S any] struct {
	Name        string // the engine's name, for errors
	MaxInFlight int    // requests admitted at once; at least 1
	// Workers is the number of worker goroutines when States is empty;
	// each gets S's zero value. At least 1.
	Workers int
	// States, when not empty, gives the device states and one worker per
	// state. A state is held by one goroutine at a time: the worker running
	// a request or a stream, or a caller running a request inline.
	States []S
	// Device readies and recovers worker states; nil does neither.
	Device Device[S]
	// Gate, when not nil, is entered around every device call (Work, a
	// stream's steps and cleanup). An engine that must quiesce its workers
	// gives the shared side of a readers-writer lock and takes the
	// exclusive side, and may check there that a state is still current.
	Gate Gate[S]
	// Inject decides fault injection per request; nil injects nothing.
	Inject Injector
	// Resubmit bounds the retries of a Start that answered ErrRetry; 0
	// means DefaultResubmit.
	Resubmit int
}

// An Executor runs an engine's requests. Its methods are safe for
// concurrent use.
type Executor[S any] struct {
	// Read by every request and written only by New, and closed once by
	// Close: kept off the cache lines that requests write (stats, mu), so
	// that callers on different CPUs do not take them from each other.
	name     string
	limit    *offload.Limiter
	inj      Injector
	dev      Device[S]
	gate     Gate[S]
	resubmit int
	jobs     chan task[S]
	// states holds the device states no goroutine holds now (shape b); nil
	// when every worker keeps its own zero state (in-process work).
	states chan S
	closed atomic.Bool
	_      [64]byte

	stats   offload.Stats
	_       [64]byte
	retried atomic.Uint64

	mu      sync.RWMutex  // held for reading while a queued submission registers; for writing by Close
	closing chan struct{} // closed by Close: pinned workers stop waiting for steps

	ops     sync.WaitGroup // queued, running, submitted and parked requests not yet settled (not inline ones: see drain)
	workers sync.WaitGroup

	closeDone chan struct{} // closed when the first Close has finished

	parkedMu sync.Mutex
	parked   map[parkable]struct{} // results held back by injected latency, and dropped requests
}

// task is what a worker takes from the queue, whatever its result type.
type task[S any] interface {
	run()            // do the work on a state from Executor.hold, and deliver
	abort(err error) // fail it without doing the work, and free its slot
	requeue() bool   // count down injected spins; true to go round again
}

// parkable is a request held back by fault injection.
type parkable interface {
	unpark(err error) // called by Close
}

// New starts an executor's workers.
func New[S any](c Config[S]) *Executor[S] {
	c.MaxInFlight = max(c.MaxInFlight, 1)
	x := &Executor[S]{
		name:      c.Name,
		limit:     offload.NewLimiter(c.MaxInFlight),
		inj:       c.Inject,
		dev:       c.Device,
		gate:      c.Gate,
		resubmit:  c.Resubmit,
		jobs:      make(chan task[S], c.MaxInFlight),
		closing:   make(chan struct{}),
		parked:    make(map[parkable]struct{}),
		closeDone: make(chan struct{}),
	}
	if x.resubmit <= 0 {
		x.resubmit = DefaultResubmit
	}
	n := max(c.Workers, 1)
	if len(c.States) > 0 {
		n = len(c.States)
		x.states = make(chan S, n)
		for _, s := range c.States {
			x.states <- s
		}
	}
	x.workers.Add(n)
	for range n {
		go x.worker()
	}
	return x
}

// hold returns the state a worker runs a task on: a device state from the
// pool, waiting for one, or, for in-process work, the zero state. Whoever
// holds a pooled state gives it back with unhold once the device is done.
// The wait is short and ends: every state is held by a request or a stream
// that is running, and Close ends the streams.
func (x *Executor[S]) hold() S {
	if x.states == nil {
		return *new(S)
	}
	return <-x.states
}

// tryHold takes a state at once for a caller that runs its request inline,
// and reports whether it could.
func (x *Executor[S]) tryHold() (S, bool) {
	if x.states == nil {
		return *new(S), true
	}
	select {
	case s := <-x.states:
		return s, true
	default:
		return *new(S), false
	}
}

// unhold gives back a state taken by hold or tryHold.
func (x *Executor[S]) unhold(s S) {
	if x.states != nil {
		x.states <- s // never blocks: the pool has room for every state
	}
}

// Stats returns the executor's counters.
func (x *Executor[S]) Stats() offload.Snapshot { return x.stats.Snapshot() }

// InFlight returns the number of requests admitted and not yet finished.
func (x *Executor[S]) InFlight() int { return x.limit.InUse() }

// Closed reports whether Close has been called.
func (x *Executor[S]) Closed() bool { return x.closed.Load() }

// Retried returns how many device calls were repeated after a recovery.
func (x *Executor[S]) Retried() uint64 { return x.retried.Load() }

// Fail returns a future failed with err, wrapped for the executor's engine
// and op.
func Fail[T, S any](x *Executor[S], op offload.Op, err error) *offload.Future[T] {
	return offload.Failed[T](offload.Wrap(x.name, op, err))
}

func (x *Executor[S]) worker() {
	defer x.workers.Done()
	for t := range x.jobs {
		if x.closed.Load() {
			t.abort(offload.ErrClosed)
			continue
		}
		if t.requeue() {
			x.mu.RLock()
			if x.closed.Load() {
				x.mu.RUnlock()
				t.abort(offload.ErrClosed)
				continue
			}
			x.jobs <- t // never blocks: every queued task holds a slot
			x.mu.RUnlock()
			continue
		}
		t.run()
	}
}

// Close fails every queued, parked and dropped request and every open
// stream's waiting steps with offload.ErrClosed, waits for the work in
// progress (on workers, on callers' goroutines and on devices that complete
// on their own), and stops the workers. Later and concurrent calls wait for
// the first to finish and do nothing more.
func (x *Executor[S]) Close() {
	x.mu.Lock()
	if x.closed.Swap(true) {
		x.mu.Unlock()
		<-x.closeDone
		return
	}
	close(x.closing)
	close(x.jobs)
	x.mu.Unlock()
	defer close(x.closeDone)

	x.workers.Wait()
	x.parkedMu.Lock()
	parked := make([]parkable, 0, len(x.parked))
	for t := range x.parked {
		parked = append(parked, t)
	}
	x.parkedMu.Unlock()
	for _, t := range parked {
		t.unpark(offload.ErrClosed)
	}
	x.ops.Wait()
	x.drain()
}

// drain waits until every slot is free, which is when the work running on
// callers' goroutines has ended, then frees them again: a submission that
// takes one afterwards finds the executor closed and gives it back.
func (x *Executor[S]) drain() {
	n := x.limit.Cap()
	for range n {
		x.limit.Acquire(context.Background())
	}
	for range n {
		x.limit.Release()
	}
}

// admit takes a slot for a request: at once with NoWait (else ErrBusy),
// otherwise waiting until ctx ends.
func (x *Executor[S]) admit(ctx context.Context, noWait bool) error {
	if noWait {
		if !x.limit.TryAcquire() {
			return offload.ErrBusy
		}
		return nil
	}
	return x.limit.Acquire(ctx)
}

// An Op is one request for Submit. Exactly one of Work and Start is set.
type Op[S, T any] struct {
	Kind offload.Op
	Call offload.Call
	Key  *offload.Key // for the injector; may be nil
	// Internal marks housekeeping (a key lookup): not counted in Stats, and
	// its errors are returned as they are instead of as *offload.OpError.
	Internal bool
	// Probe is handed to Config.Device: the engine admitted this request
	// to test a device it believes down (a half-open circuit breaker).
	Probe bool
	// Repeat says the work is safe to run twice: after Device.Recover
	// rebuilt the worker's state, it runs once more if the caller still
	// waits.
	Repeat bool

	// Work does the request on the worker state s (S's zero value for
	// in-process work). It must be safe to run on any goroutine.
	Work func(s S) (T, error)
	// Start submits the request to a device that completes on its own and
	// returns at once; the device calls done exactly once, from any
	// goroutine, unless Start returns an error (ErrRetry to be tried
	// again). inline reports that Start runs on the caller's goroutine
	// with Call.Inline set, so the caller is certain to wait.
	Start func(inline bool, done func(T, error)) error

	// Detach, if not nil, is called before the request leaves the caller's
	// goroutine (queued for a worker, or submitted to a device): it must
	// copy whatever the request reads from the caller's memory, because a
	// request whose context ends resolves before its work is done and the
	// caller may then reuse its buffers. Work run on the caller's goroutine
	// (Call.Inline with a free slot) reads them directly.
	Detach func()
	// Release, if not nil, is given a result that was computed but not
	// delivered (the request's context ended or the executor closed
	// first), once the device is done with it, to zero secrets or return
	// buffers.
	Release func(T)
}

// Submit admits o and returns its future. Work with Call.Inline set runs
// on the calling goroutine before Submit returns when a slot is free at
// once, and, for workers that own device state, a state too (readied,
// gated and recovered exactly as on a worker); other work is queued for a
// worker; a Start is called on the calling goroutine.
//
// Inline work is not interrupted when ctx ends, but its result does not
// outlive the context: when ctx has ended by the time the work returns,
// the result goes to Op.Release and the future fails with the context's
// error, as it would have if a worker had run the work, and a failure the
// device recovered from is not retried. The caller thus sees the context's
// end no later than the end of the work.
func Submit[S, T any](x *Executor[S], ctx context.Context, o Op[S, T]) *offload.Future[T] {
	op := o.Kind
	if x.closed.Load() {
		return failOp(x, o, offload.ErrClosed)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return failOp(x, o, err)
	}
	if ctx.Err() != nil {
		return failOp(x, o, context.Cause(ctx))
	}
	var out Outcome
	if x.inj != nil {
		out = x.inj.Decide(op, o.Key)
	}
	// Work held back by injection goes through the queue even when the
	// caller waits: a result computed on the caller's goroutine may live
	// in the caller's memory (CipherRequest.Out), which must not be
	// touched once the caller has been given up on.
	inline := o.Call.Inline && o.Work != nil && !out.held()
	admitted := false
	if inline && x.limit.TryAcquire() {
		// The common blocking call: no job, no promise, no hand-off, no
		// lock. The slot is what Close waits for: it is held before closed
		// is read, and Close sets closed before it waits for every slot.
		if x.closed.Load() {
			x.limit.Release()
			return failOp(x, o, offload.ErrClosed)
		}
		if s, ok := x.tryHold(); ok {
			return runInline(x, ctx, s, &o, out.Err)
		}
		// Every state is held (a worker has freed its slot and not yet
		// given its state back, or there are more slots than states): the
		// request keeps its slot and goes to a worker.
		admitted = true
	}
	// A request that must wait for its slot goes to a worker even when its
	// caller waits: with callers queueing, device calls then stay on the
	// few worker goroutines (and threads) instead of moving from caller to
	// caller, which on SoftHSM2 costs more CPU per signature than the
	// hand-off saves.
	if !admitted {
		if err := x.admit(ctx, o.Call.NoWait); err != nil {
			return failOp(x, o, err)
		}
	}

	x.mu.RLock()
	if x.closed.Load() {
		x.mu.RUnlock()
		x.limit.Release()
		return failOp(x, o, offload.ErrClosed)
	}
	x.ops.Add(1)
	j := &job[S, T]{
		x:        x,
		o:        o,
		ctx:      ctx,
		out:      out,
		spins:    out.Spins,
		promise:  offload.NewPromise[T](),
		internal: o.Internal,
	}
	if !o.Internal {
		j.start = x.stats.Start(op)
	}
	if o.Detach != nil {
		o.Detach()
	}
	switch {
	case out.Drop:
		// Parked before the lock is let go, so that Close, which takes the
		// lock before it looks at what is parked, cannot miss it.
		x.park(j)
		j.watch()
		x.mu.RUnlock()
	case out.Err != nil:
		x.mu.RUnlock()
		j.settle(*new(T), out.Err)
	case o.Start != nil && j.spins == 0:
		x.mu.RUnlock()
		j.watch()
		// A result held back by injection may outlive the caller's wait, so
		// the device must not have written it into the caller's memory.
		j.submit(o.Call.Inline && !out.held())
	default:
		j.watch()
		x.jobs <- j // never blocks: the channel holds as many tasks as there are slots
		x.mu.RUnlock()
	}
	return j.promise.Future()
}

// runInline does o's work on the caller's goroutine, on the state s it
// holds with a slot, unless injection failed it with injected, and gives
// both back before it returns the resolved future.
func runInline[S, T any](x *Executor[S], ctx context.Context, s S, o *Op[S, T], injected error) *offload.Future[T] {
	op := o.Kind
	var start time.Time
	if !o.Internal {
		start = x.stats.Start(op)
	}
	var v T
	err := injected
	if err == nil {
		pending := alwaysPending
		if x.dev != nil {
			// A recovered failure is retried only for a caller whose
			// context has not ended: its result would be dropped.
			pending = func() bool { return ctx.Err() == nil }
		}
		v, err = call(x, s, o, true, pending)
		if ctx.Err() != nil {
			// The context ended while the work ran, which nothing
			// interrupts: its end wins, as it would have on a worker.
			if o.Release != nil {
				o.Release(v)
			}
			v, err = *new(T), context.Cause(ctx)
		}
	}
	x.unhold(s)
	err = x.wrap(o.Internal, op, err)
	if !o.Internal {
		x.stats.Finish(op, start, err)
	}
	x.limit.Release()
	return offload.Resolved(v, err)
}

// failOp returns a future failed with err for o.
func failOp[S, T any](x *Executor[S], o Op[S, T], err error) *offload.Future[T] {
	return offload.Failed[T](x.wrap(o.Internal, o.Kind, err))
}

// wrap returns err as an *offload.OpError for op, or as it is for
// housekeeping.
func (x *Executor[S]) wrap(internal bool, op offload.Op, err error) error {
	if internal {
		return err
	}
	return offload.Wrap(x.name, op, err)
}

func alwaysPending() bool { return true }

// call runs o.Work on s: readied by the Device first (when prepare is
// set), under the Gate, and once more after the Device rebuilt s, when o
// may be repeated and pending says its caller still waits.
func call[S, T any](x *Executor[S], s S, o *Op[S, T], prepare bool, pending func() bool) (T, error) {
	if x.dev == nil {
		return guard(x, s, o.Work)
	}
	var v T
	var err error
	if prepare {
		v, err = prepared(x, s, o, false)
	} else {
		// A step that continues a stream's device operation: a stale state
		// lost the operation, so it is not readied and entered again.
		v, err = guard(x, s, o.Work)
	}
	if err == nil {
		return v, nil
	}
	rebuilt, rerr := x.dev.Recover(s, o.Probe, err)
	if !rebuilt || !o.Repeat || !pending() {
		return v, rerr
	}
	x.retried.Add(1)
	return prepared(x, s, o, true)
}

// prepared makes the device call under the Gate, readying s first
// (Device.Prepare) unless ready says a recovery just rebuilt it. While the
// Gate finds s stale, s is readied and the Gate entered again, up to
// StaleTries entries in all.
func prepared[S, T any](x *Executor[S], s S, o *Op[S, T], ready bool) (v T, err error) {
	for range StaleTries {
		if !ready {
			if err := x.dev.Prepare(s, o.Probe); err != nil {
				return *new(T), err
			}
		}
		v, err = guard(x, s, o.Work)
		if !errors.Is(err, ErrStale) {
			break
		}
		ready = false
	}
	return v, err
}

// guard makes one device call under the Gate, or none when the Gate
// refuses s. A panic in the call is a bug in the engine; it is turned into
// the call's error (a *PanicError) so that the slot is freed and Close does
// not wait for ever.
func guard[S, T any](x *Executor[S], s S, work func(S) (T, error)) (v T, err error) {
	if x.gate != nil {
		if err := x.gate.Enter(s); err != nil {
			return *new(T), err
		}
		defer x.gate.Leave(s)
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = *new(T), &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return work(s)
}

// A PanicError is the error of a request whose engine work panicked. Its
// message is short; the stack is kept in Stack for whoever wants it.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("engine work panicked: %v", e.Value) }

// job is one queued, submitted or parked request.
type job[S, T any] struct {
	x        *Executor[S]
	o        Op[S, T]
	ctx      context.Context
	out      Outcome
	spins    int
	internal bool
	start    time.Time

	promise offload.Promise[T]
	stop    atomic.Pointer[func() bool] // stops the context watch; set once watch has registered it
	timer   *time.Timer                 // injected latency
	held    T                           // the result the timer holds back
	heldErr error
	done    atomic.Bool // settled: the slot has been freed
}

// watch resolves the future with the context's error as soon as ctx ends.
func (j *job[S, T]) watch() {
	if j.ctx.Done() == nil {
		return
	}
	stop := context.AfterFunc(j.ctx, func() {
		err := j.x.wrap(j.internal, j.o.Kind, context.Cause(j.ctx))
		if j.out.Drop {
			// A dropped request holds its slot until it is given up.
			j.x.unparkTask(j)
			j.settle(*new(T), err)
			return
		}
		j.promise.Resolve(*new(T), err)
	})
	j.stop.Store(&stop)
}

func (j *job[S, T]) run() {
	if !j.promise.Pending() {
		// Cancelled while queued: the device never sees it.
		j.settle(*new(T), j.promise.Future().Err())
		return
	}
	if j.o.Start != nil {
		j.submit(false)
		return
	}
	x := j.x
	s := x.hold()
	v, err := call(x, s, &j.o, true, j.promise.Pending)
	// The state goes back before the slot is freed, so that a caller who
	// finds a free slot finds a free state too.
	x.unhold(s)
	j.deliver(v, err)
}

// submit hands the request to a device that completes on its own, trying
// again while it answers ErrRetry, up to the executor's bound.
func (j *job[S, T]) submit(inline bool) {
	for try := 0; ; try++ {
		err := j.startOnce(inline)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrRetry) {
			j.settle(*new(T), err)
			return
		}
		if try == j.x.resubmit || !j.promise.Pending() {
			if j.promise.Pending() {
				err = fmt.Errorf("%w: the device was still full after %d retries", offload.ErrBusy, try)
			} else {
				err = j.promise.Future().Err()
			}
			j.settle(*new(T), err)
			return
		}
		runtime.Gosched()
	}
}

// startOnce calls o.Start once, turning a panic into the request's error.
func (j *job[S, T]) startOnce(inline bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return j.o.Start(inline, j.deliver)
}

// deliver takes the device's result: at once, or after the injected delay.
func (j *job[S, T]) deliver(v T, err error) {
	if j.out.Delay > 0 {
		j.delay(v, err)
		return
	}
	j.settle(v, err)
}

// delay parks the result for the injected latency, holding the slot as a
// slow device would.
func (j *job[S, T]) delay(v T, err error) {
	x := j.x
	x.parkedMu.Lock()
	if x.closed.Load() {
		// Close has begun and may have gathered the parked requests
		// already: one parked now would hold Close for the whole delay.
		// It fails as Close fails what it finds parked.
		x.parkedMu.Unlock()
		if err == nil && j.o.Release != nil {
			j.o.Release(v)
		}
		j.abort(offload.ErrClosed)
		return
	}
	j.held, j.heldErr = v, err
	j.timer = time.AfterFunc(j.out.Delay, func() {
		if x.unparkTask(j) {
			j.settle(j.held, j.heldErr)
		}
	})
	x.parked[j] = struct{}{}
	x.parkedMu.Unlock()
}

func (j *job[S, T]) requeue() bool {
	if j.spins > 0 && j.promise.Pending() {
		j.spins--
		return true
	}
	return false
}

func (j *job[S, T]) abort(err error) { j.settle(*new(T), err) }

func (j *job[S, T]) unpark(err error) {
	if j.timer != nil && !j.timer.Stop() {
		return // the timer fired and delivers
	}
	if !j.x.unparkTask(j) {
		return
	}
	if j.timer != nil && j.heldErr == nil && j.o.Release != nil {
		// Computed, then held back by the injected latency: it will never
		// be delivered.
		j.o.Release(j.held)
	}
	j.abort(err)
}

// settle ends the request, once. It records the outcome and frees the slot
// before it wakes the caller, so a caller that reads Stats or submits again
// right after its Wait finds its own request finished. Then it resolves the
// future with v and err; a computed result that loses the race (the
// context's end or Close resolved the future first) goes to Release, the
// device being done with it. Close's wait ends only after the future is
// resolved.
func (j *job[S, T]) settle(v T, err error) {
	if j.done.Swap(true) {
		return
	}
	if stop := j.stop.Load(); stop != nil {
		(*stop)()
	}
	x := j.x
	err = x.wrap(j.internal, j.o.Kind, err)
	won := j.promise.Claim()
	outcome := err
	if !won {
		// The context's end or Close resolved it with an error, or is
		// resolving it (Err answers ErrNotReady meanwhile): either way the
		// caller saw a failure.
		outcome = j.promise.Future().Err()
	}
	if !j.internal {
		x.stats.Finish(j.o.Kind, j.start, outcome)
	}
	x.limit.Release()
	if won {
		j.promise.Complete(v, err)
	} else if j.o.Release != nil {
		j.o.Release(v) // also a partial result that came with an error
	}
	x.ops.Done()
}

// park records a request that waits on a timer or on nothing.
func (x *Executor[S]) park(t parkable) {
	x.parkedMu.Lock()
	x.parked[t] = struct{}{}
	x.parkedMu.Unlock()
}

// unparkTask removes a parked request and reports whether it was still
// there.
func (x *Executor[S]) unparkTask(t parkable) bool {
	x.parkedMu.Lock()
	_, ok := x.parked[t]
	delete(x.parked, t)
	x.parkedMu.Unlock()
	return ok
}
