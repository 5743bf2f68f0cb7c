package exec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// PinSpec describes a Stream for Pin.
type PinSpec[S any] struct {
	Kind  offload.Op // what the stream counts as in Stats
	Probe bool       // as Op.Probe, for the stream's steps
	// Cleanup, if not nil, runs on the pinned worker (under the Gate) once
	// the stream is over, before the worker and its state go back to the
	// pool: it ends whatever the steps left open on the state.
	Cleanup func(s S)
	// Finished is the error later steps fail with after a Last step
	// succeeded.
	Finished error
}

// errEnded ends a stream whose End was given no error, and errFinished one
// whose PinSpec has no Finished.
var (
	errEnded    = errors.New("exec: stream ended")
	errFinished = fmt.Errorf("exec: stream already finished: %w", offload.ErrInvalid)
)

// A Stream is one worker pinned to a sequence of steps, which run on its
// state in the order they were sent. It holds one in-flight slot, one
// worker and one state from Pin until it is over (a caller's inline request
// never takes a pinned state); it is counted as one request of its
// Kind. A stream is over after a Last step succeeds, after any step fails
// or is given up (its context ended: the device's state is then unknown),
// after End, and when the executor closes; later steps fail with the error
// that ended it. Its methods are safe for concurrent use.
type Stream[S any] struct {
	x     *Executor[S]
	spec  PinSpec[S]
	start time.Time

	wake chan struct{} // cap 1: a step was queued or the stream ended

	mu    sync.Mutex
	steps []stepper[S] // sent and not yet taken by the worker
	err   error        // why the stream is over; nil while it is open
	// last is the step that ended the stream, resolved after the slot is
	// freed so that its caller sees the stream settled.
	last func()
}

// stepper is a Stream's step, whatever its result type.
type stepper[S any] interface {
	run(st *Stream[S], s S) // do it on s; may end the stream
	fail(err error)         // resolve it with err without running it
}

// Pin admits a stream, waiting for a slot until ctx ends, and queues it for
// a worker, which serves only its steps until it is over.
func Pin[S any](x *Executor[S], ctx context.Context, spec PinSpec[S]) (*Stream[S], error) {
	op := spec.Kind
	if x.closed.Load() {
		return nil, offload.Wrap(x.name, op, offload.ErrClosed)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, offload.Wrap(x.name, op, err)
	}
	if ctx.Err() != nil {
		return nil, offload.Wrap(x.name, op, context.Cause(ctx))
	}
	if err := x.limit.Acquire(ctx); err != nil {
		return nil, offload.Wrap(x.name, op, err)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed.Load() {
		x.limit.Release()
		return nil, offload.Wrap(x.name, op, offload.ErrClosed)
	}
	if spec.Finished == nil {
		spec.Finished = errFinished
	}
	x.ops.Add(1)
	st := &Stream[S]{x: x, spec: spec, wake: make(chan struct{}, 1), start: x.stats.Start(op)}
	x.jobs <- st // never blocks: the channel holds as many tasks as there are slots
	return st, nil
}

// End ends the stream with err unless it is already over, and reports
// whether this call ended it. Steps not yet run fail with err; a step
// running now finishes. End does not wait for the device.
func (st *Stream[S]) End(err error) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.endLocked(err)
}

func (st *Stream[S]) endLocked(err error) bool {
	if st.err != nil {
		return false
	}
	if err == nil {
		err = errEnded
	}
	st.err = err
	select {
	case st.wake <- struct{}{}:
	default:
	}
	return true
}

// Err returns why the stream is over, or nil while it is open.
func (st *Stream[S]) Err() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// A Step is one request on a Stream.
type Step[S, T any] struct {
	Work func(s S) (T, error)
	// Repeat marks a step that begins the stream's device operation: the
	// state is readied (Device.Prepare) before it, and it may run again
	// after Device.Recover rebuilt the state. A step that continues the
	// operation runs on the state as it is and is never repeated: the
	// operation would have gone with the old state.
	Repeat bool
	// Last ends the stream when the step succeeds: the stream's slot is
	// freed before the step's future resolves.
	Last bool
	// Release, as Op.Release, gets a result that lost to the step's
	// context.
	Release func(T)
}

// Do sends a step to the stream's worker and returns its future. The step
// runs after every step sent before it. When ctx ends before the step is
// done, its future resolves at once with ctx's error and the stream ends.
func Do[S, T any](st *Stream[S], ctx context.Context, step Step[S, T]) *offload.Future[T] {
	op := st.spec.Kind
	x := st.x
	sp := &streamStep[S, T]{step: step, ctx: ctx, promise: offload.NewPromise[T]()}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return offload.Failed[T](offload.Wrap(x.name, op, st.err))
	}
	if err := offload.CheckContext(ctx); err != nil {
		st.endLocked(err)
		return offload.Failed[T](offload.Wrap(x.name, op, err))
	}
	if ctx.Err() != nil {
		err := context.Cause(ctx)
		st.endLocked(err)
		return offload.Failed[T](offload.Wrap(x.name, op, err))
	}
	if ctx.Done() != nil {
		sp.stop = context.AfterFunc(ctx, func() {
			err := context.Cause(ctx)
			if sp.promise.Resolve(*new(T), offload.Wrap(x.name, op, err)) {
				st.End(err)
			}
		})
	}
	st.steps = append(st.steps, sp)
	select {
	case st.wake <- struct{}{}:
	default:
	}
	return sp.promise.Future()
}

// next takes the next step, or reports that the stream is over.
func (st *Stream[S]) next() (stepper[S], bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return nil, false
	}
	if len(st.steps) == 0 {
		return nil, true
	}
	sp := st.steps[0]
	st.steps[0] = nil
	st.steps = st.steps[1:]
	return sp, true
}

// run serves the stream on the worker that took it, with one state held
// until the stream is over.
func (st *Stream[S]) run() {
	x := st.x
	s := x.hold()
	for {
		if x.closed.Load() {
			st.End(offload.ErrClosed)
		}
		sp, open := st.next()
		if !open {
			break
		}
		if sp != nil {
			sp.run(st, s)
			continue
		}
		select {
		case <-st.wake:
		case <-x.closing:
			st.End(offload.ErrClosed)
		}
	}
	if st.spec.Cleanup != nil {
		guard(x, s, func(s S) (struct{}, error) { st.spec.Cleanup(s); return struct{}{}, nil })
	}
	x.unhold(s)
	st.settle()
}

// abort fails a stream no worker took (the executor closed).
func (st *Stream[S]) abort(err error) {
	st.End(err)
	st.settle()
}

// requeue: streams are not subject to injected spins.
func (st *Stream[S]) requeue() bool { return false }

// settle fails the steps left, records the stream's outcome, frees its
// slot, and then resolves the step that ended it.
func (st *Stream[S]) settle() {
	x := st.x
	st.mu.Lock()
	outcome := st.err
	left := st.steps
	st.steps = nil
	last := st.last
	st.mu.Unlock()
	for _, sp := range left {
		sp.fail(offload.Wrap(x.name, st.spec.Kind, outcome))
	}
	if outcome == st.spec.Finished && last != nil {
		outcome = nil
	}
	x.stats.Finish(st.spec.Kind, st.start, outcome)
	x.limit.Release()
	if last != nil {
		last()
	}
	x.ops.Done()
}

// streamStep is a Step and its promise.
type streamStep[S, T any] struct {
	step    Step[S, T]
	ctx     context.Context
	promise offload.Promise[T]
	stop    func() bool
}

func (sp *streamStep[S, T]) fail(err error) {
	if sp.stop != nil {
		sp.stop()
	}
	sp.promise.Resolve(*new(T), err)
}

func (sp *streamStep[S, T]) run(st *Stream[S], s S) {
	x := st.x
	if !sp.promise.Pending() {
		// Given up: the context's watch resolved it and ends the stream,
		// perhaps not yet.
		st.End(context.Cause(sp.ctx))
		return
	}
	o := Op[S, T]{Probe: st.spec.Probe, Repeat: sp.step.Repeat, Work: sp.step.Work}
	v, err := call(x, s, &o, sp.step.Repeat, sp.promise.Pending)
	ends := err != nil || sp.step.Last
	if ends {
		cause := err
		if cause == nil {
			cause = st.spec.Finished
		}
		st.mu.Lock()
		if st.endLocked(cause) {
			// The step's outcome is the stream's: it is delivered once the
			// stream has settled.
			st.last = func() { sp.resolve(v, err, x.name, st.spec.Kind) }
			st.mu.Unlock()
			return
		}
		st.mu.Unlock()
	}
	sp.resolve(v, err, x.name, st.spec.Kind)
}

// resolve delivers the step's outcome, or releases a result that lost to
// its context.
func (sp *streamStep[S, T]) resolve(v T, err error, name string, op offload.Op) {
	if sp.stop != nil {
		sp.stop()
	}
	if !sp.promise.Resolve(v, offload.Wrap(name, op, err)) && sp.step.Release != nil {
		sp.step.Release(v)
	}
}
