// Package dispatch runs an in-process engine's operations: admission against
// the in-flight limit, a pool of workers, work on the caller's goroutine when
// the caller is about to wait anyway, cancellation, injected latency and
// faults, statistics, and Close. The software engine is built on it, and so
// is any engine whose "device" is Go code.
package dispatch

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// Config configures a Pool.
type Config struct {
	Name        string           // the engine's name, for errors
	Workers     int              // goroutines running queued work; at least 1
	MaxInFlight int              // operations admitted at once; at least 1
	Inject      *inject.Injector // nil injects nothing
}

// A Pool runs operations. Its methods are safe for concurrent use.
type Pool struct {
	name  string
	limit *offload.Limiter
	inj   *inject.Injector
	jobs  chan task
	stats offload.Stats

	closed atomic.Bool
	_      [63]byte // the hot path reads closed: keep writes to mu off its cache line

	mu sync.RWMutex // held for reading while a queued submission registers; for writing by Close

	ops     sync.WaitGroup // queued, running and parked operations not yet settled (not inline ones: see drain)
	workers sync.WaitGroup

	closeDone chan struct{} // closed when the first Close has finished

	parkedMu sync.Mutex
	parked   map[task]struct{} // results held back by injected latency, and dropped requests
}

// task is a queued or parked operation, whatever its result type.
type task interface {
	run()             // do the work (on a worker) and deliver
	abort(err error)  // fail it without doing the work, and free its slot
	requeue() bool    // count down injected NotReady spins; true to go round again
	unpark(err error) // called by Close on a parked task
}

// New starts a pool's workers.
func New(c Config) *Pool {
	c.Workers = max(c.Workers, 1)
	c.MaxInFlight = max(c.MaxInFlight, 1)
	p := &Pool{
		name:      c.Name,
		limit:     offload.NewLimiter(c.MaxInFlight),
		inj:       c.Inject,
		jobs:      make(chan task, c.MaxInFlight),
		parked:    make(map[task]struct{}),
		closeDone: make(chan struct{}),
	}
	p.workers.Add(c.Workers)
	for range c.Workers {
		go p.worker()
	}
	return p
}

// Stats returns the pool's counters.
func (p *Pool) Stats() offload.Snapshot { return p.stats.Snapshot() }

// InFlight returns the number of operations admitted and not yet finished.
func (p *Pool) InFlight() int { return p.limit.InUse() }

// Closed reports whether Close has been called.
func (p *Pool) Closed() bool { return p.closed.Load() }

// Fail returns a future failed with err, wrapped for the pool's engine and op.
func Fail[T any](p *Pool, op offload.Op, err error) *offload.Future[T] {
	return offload.Failed[T](offload.Wrap(p.name, op, err))
}

func (p *Pool) worker() {
	defer p.workers.Done()
	for t := range p.jobs {
		if p.closed.Load() {
			t.abort(offload.ErrClosed)
			continue
		}
		if t.requeue() {
			p.mu.RLock()
			if p.closed.Load() {
				p.mu.RUnlock()
				t.abort(offload.ErrClosed)
				continue
			}
			p.jobs <- t // never blocks: every queued task holds a slot
			p.mu.RUnlock()
			continue
		}
		t.run()
	}
}

// Close fails every queued and parked operation with ErrClosed, waits for the
// work in progress, and stops the workers. Later and concurrent calls wait
// for the first to finish and do nothing more.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		<-p.closeDone
		return
	}
	close(p.jobs)
	p.mu.Unlock()
	defer close(p.closeDone)

	p.workers.Wait()
	p.parkedMu.Lock()
	parked := make([]task, 0, len(p.parked))
	for t := range p.parked {
		parked = append(parked, t)
	}
	p.parkedMu.Unlock()
	for _, t := range parked {
		t.unpark(offload.ErrClosed)
	}
	p.ops.Wait()
	p.drain()
}

// drain waits until every slot is free, which is when the work running on
// callers' goroutines has ended, then frees them again: a submission that
// takes one afterwards finds the pool closed and gives it back.
func (p *Pool) drain() {
	n := p.limit.Cap()
	for range n {
		p.limit.Acquire(context.Background())
	}
	for range n {
		p.limit.Release()
	}
}

// An Op is one operation for Submit.
type Op[T any] struct {
	Kind offload.Op
	Call offload.Call
	Key  *offload.Key // for fault predicates; may be nil
	// Work does the operation. It must be safe to run on any goroutine.
	Work func() (T, error)
	// Detach, if not nil, is called before Work is queued for a worker: it
	// must copy whatever Work reads from the caller's memory, because a
	// request whose context ends resolves before its work is done and the
	// caller may then reuse its buffers. Work run on the caller's goroutine
	// (Call.Inline with a free slot) reads them directly.
	Detach func()
	// Release, if not nil, is given a result that was computed but not
	// delivered (the request was cancelled or the engine closed), to zero
	// secrets or return buffers.
	Release func(T)
}

// Submit runs o and returns its future. When o.Call.Inline is set and a slot
// is free at once, the work runs on the calling goroutine before Submit
// returns; otherwise a worker runs it.
func Submit[T any](p *Pool, ctx context.Context, o Op[T]) *offload.Future[T] {
	op := o.Kind
	if p.closed.Load() {
		return Fail[T](p, op, offload.ErrClosed)
	}
	if ctx.Err() != nil {
		return Fail[T](p, op, context.Cause(ctx))
	}
	out := p.inj.Decide(op, o.Key)

	// Work with injected latency or spins goes through the queue even when
	// the caller waits: its result is held back after the work, and a
	// result computed on the caller's goroutine may live in the caller's
	// memory (CipherRequest.Out), which must not be touched once the
	// caller has been given up on.
	inline := o.Call.Inline && !out.Drop && out.Delay <= 0 && p.inj.NotReady() == 0
	switch {
	case o.Call.NoWait || inline:
		if p.limit.TryAcquire() {
			break
		}
		if o.Call.NoWait {
			return Fail[T](p, op, offload.ErrBusy)
		}
		inline = false
		fallthrough
	default:
		if err := p.limit.Acquire(ctx); err != nil {
			return Fail[T](p, op, err)
		}
	}

	if inline {
		// The common blocking call: no job, no promise, no hand-off, no
		// lock. The slot is what Close waits for: it is held before closed
		// is read, and Close sets closed before it waits for every slot.
		if p.closed.Load() {
			p.limit.Release()
			return Fail[T](p, op, offload.ErrClosed)
		}
		start := p.stats.Start(op)
		v, err := compute(p, op, out, o.Work)
		p.stats.Finish(op, start, err)
		p.limit.Release()
		return offload.Resolved(v, err)
	}

	p.mu.RLock()
	if p.closed.Load() {
		p.mu.RUnlock()
		p.limit.Release()
		return Fail[T](p, op, offload.ErrClosed)
	}
	p.ops.Add(1)
	j := &job[T]{
		pool:    p,
		op:      op,
		ctx:     ctx,
		work:    o.Work,
		release: o.Release,
		out:     out,
		spins:   p.inj.NotReady(),
		start:   p.stats.Start(op),
	}
	if o.Detach != nil {
		o.Detach()
	}
	j.promise = offload.NewPromise[T]()
	if out.Drop {
		// Parked before the lock is let go, so that Close, which takes the
		// lock before it looks at what is parked, cannot miss it.
		p.park(j)
		j.watch()
		p.mu.RUnlock()
		return j.promise.Future()
	}
	j.watch()
	p.jobs <- j // never blocks: the channel holds as many tasks as there are slots
	p.mu.RUnlock()
	return j.promise.Future()
}

type job[T any] struct {
	pool    *Pool
	op      offload.Op
	ctx     context.Context
	work    func() (T, error)
	release func(T)
	out     inject.Outcome
	spins   int
	start   time.Time

	promise offload.Promise[T]
	stop    atomic.Pointer[func() bool] // stops the context watch; set once watch has registered it
	timer   *time.Timer                 // injected latency
	held    T                           // the result the timer holds back
	heldErr error
	done    atomic.Bool // settled: the slot has been freed
}

// watch resolves the future with the context's error as soon as ctx ends.
func (j *job[T]) watch() {
	if j.ctx.Done() == nil {
		return
	}
	stop := context.AfterFunc(j.ctx, func() {
		err := offload.Wrap(j.pool.name, j.op, context.Cause(j.ctx))
		if j.out.Drop {
			// A dropped request holds its slot until it is given up.
			j.pool.unpark(j)
			j.settle(*new(T), err)
			return
		}
		j.promise.Resolve(*new(T), err)
	})
	j.stop.Store(&stop)
}

// compute runs work, or the injected fault instead of it. A panic in the
// work is a bug in the engine; it is turned into the operation's error so
// that the slot is freed and Close does not wait for ever, and the stack is
// kept in the message.
func compute[T any](p *Pool, op offload.Op, out inject.Outcome, work func() (T, error)) (v T, err error) {
	if out.Err != nil {
		return v, offload.Wrap(p.name, op, out.Err)
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = *new(T), offload.Errorf(p.name, op, "engine work panicked: %v\n%s", r, debug.Stack())
		}
	}()
	v, err = work()
	return v, offload.Wrap(p.name, op, err)
}

func (j *job[T]) run() {
	if !j.promise.Pending() {
		// Cancelled while queued: the device never sees it.
		j.settle(*new(T), j.promise.Future().Err())
		return
	}
	v, err := compute(j.pool, j.op, j.out, j.work)
	if j.out.Delay > 0 {
		j.delay(v, err)
		return
	}
	j.settle(v, err)
}

// delay parks the result for the injected latency, holding the slot as a
// slow device would.
func (j *job[T]) delay(v T, err error) {
	p := j.pool
	p.parkedMu.Lock()
	j.held, j.heldErr = v, err
	j.timer = time.AfterFunc(j.out.Delay, func() {
		if p.unpark(j) {
			j.settle(j.held, j.heldErr)
		}
	})
	p.parked[j] = struct{}{}
	p.parkedMu.Unlock()
}

func (j *job[T]) requeue() bool {
	if j.spins > 0 && j.promise.Pending() {
		j.spins--
		return true
	}
	return false
}

func (j *job[T]) abort(err error) {
	j.settle(*new(T), offload.Wrap(j.pool.name, j.op, err))
}

func (j *job[T]) unpark(err error) {
	if j.timer != nil && !j.timer.Stop() {
		return // the timer fired and delivers
	}
	if !j.pool.unpark(j) {
		return
	}
	if j.timer != nil && j.heldErr == nil && j.release != nil {
		// Computed, then held back by the injected latency: it will never
		// be delivered.
		j.release(j.held)
	}
	j.abort(err)
}

// settle ends the job, once. It records the outcome and frees the slot
// before it wakes the caller, so a caller that reads Stats or submits again
// right after its Wait finds its own operation finished. Then it resolves the
// future with v and err; a computed result that loses the race (the
// context's end or Close resolved the future first) goes to Release.
// Close's wait ends only after the future is resolved.
func (j *job[T]) settle(v T, err error) {
	if j.done.Swap(true) {
		return
	}
	if stop := j.stop.Load(); stop != nil {
		(*stop)()
	}
	p := j.pool
	won := j.promise.Claim()
	outcome := err
	if !won {
		// The context's end or Close resolved it with an error, or is
		// resolving it (Err answers ErrNotReady meanwhile): either way the
		// caller saw a failure.
		outcome = j.promise.Future().Err()
	}
	p.stats.Finish(j.op, j.start, outcome)
	p.limit.Release()
	if won {
		j.promise.Complete(v, err)
	} else if err == nil && j.release != nil {
		j.release(v)
	}
	p.ops.Done()
}

// park records a task that waits on a timer or on nothing.
func (p *Pool) park(t task) {
	p.parkedMu.Lock()
	p.parked[t] = struct{}{}
	p.parkedMu.Unlock()
}

// unpark removes a parked task and reports whether it was still there.
func (p *Pool) unpark(t task) bool {
	p.parkedMu.Lock()
	_, ok := p.parked[t]
	delete(p.parked, t)
	p.parkedMu.Unlock()
	return ok
}
