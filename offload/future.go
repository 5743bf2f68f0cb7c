package offload

import (
	"context"
	"sync"
	"sync/atomic"
)

// Future states.
const (
	pending uint32 = iota
	resolving
	resolved
)

// closedChan is shared by futures created already resolved, so they cost one
// allocation instead of two.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// A Future is the result of an operation submitted to an engine: a
// write-once slot and a channel closed when the slot is filled. It resolves
// exactly once; the first resolution wins and later ones are refused.
//
// A caller can block (Wait), select on Done, ask without blocking (Poll), or
// hand the future to a Queue and collect it with many others. All methods are
// safe for concurrent use, and any number of goroutines may wait at once.
//
// Giving up a Wait does not cancel the operation: the context passed when the
// operation was submitted does that. When that context ends the future
// resolves at once with the context's error; the device's late result is
// dropped by the engine and never delivered.
type Future[T any] struct {
	state atomic.Uint32
	done  chan struct{}
	val   T
	err   error

	mu    sync.Mutex
	hooks []func() // run once, after resolution; see Queue
}

// A Promise is the engine's side of a Future: the right to resolve it.
// Engines create one with NewPromise, hand its Future to the caller and
// resolve it when the device answers.
type Promise[T any] struct{ f *Future[T] }

// NewPromise returns a pending future's promise.
func NewPromise[T any]() Promise[T] {
	return Promise[T]{&Future[T]{done: make(chan struct{})}}
}

// Resolved returns a future that is already resolved with v and err.
func Resolved[T any](v T, err error) *Future[T] {
	f := &Future[T]{done: closedChan, val: v, err: err}
	f.state.Store(resolved)
	return f
}

// Failed returns a future already resolved with err and T's zero value.
func Failed[T any](err error) *Future[T] {
	var zero T
	return Resolved(zero, err)
}

// Future returns the future this promise resolves.
func (p Promise[T]) Future() *Future[T] { return p.f }

// Resolve fills the future with v and err, wakes every waiter and runs the
// queue hooks. It reports whether this call resolved it: false means another
// resolution (typically the submitting context's end, or Close) won the race,
// and v was not delivered, so the caller must release whatever v holds
// (zero secret bytes, return a buffer to its pool).
func (p Promise[T]) Resolve(v T, err error) bool {
	if !p.Claim() {
		return false
	}
	p.Complete(v, err)
	return true
}

// Claim takes the right to resolve the future without resolving it yet, and
// reports whether it got it. After a successful Claim every other
// resolution is refused, waiters keep waiting, and the caller must call
// Complete exactly once. Engines use it to finish their own bookkeeping
// (statistics, freeing the slot) between winning the race and waking the
// caller, so that a caller who reads them after Wait sees its operation.
func (p Promise[T]) Claim() bool {
	return p.f.state.CompareAndSwap(pending, resolving)
}

// Complete resolves a future whose resolution was Claimed: it fills it with
// v and err, wakes every waiter and runs the queue hooks. Calling it without
// a successful Claim, or twice, panics.
func (p Promise[T]) Complete(v T, err error) {
	f := p.f
	if f.state.Load() != resolving {
		panic("offload: Promise.Complete without Claim")
	}
	f.val, f.err = v, err
	f.state.Store(resolved)
	close(f.done)
	f.mu.Lock()
	hooks := f.hooks
	f.hooks = nil
	f.mu.Unlock()
	for _, h := range hooks {
		h()
	}
}

// Pending reports whether the future is still unresolved. An engine checks it
// before starting queued work, to skip requests whose context already ended.
func (p Promise[T]) Pending() bool { return p.f.state.Load() == pending }

// Wait blocks until the future resolves or ctx ends, whichever is first. When
// ctx ends first it returns ctx's error and the future stays as it was: the
// operation goes on, and a later Wait or Poll can still collect it. A nil
// ctx is refused with an error wrapping ErrInvalid, resolved or not (see
// CheckContext), and also leaves the future as it was.
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	if ctx == nil {
		var zero T
		return zero, errNilContext
	}
	if f.state.Load() == resolved {
		return f.val, f.err
	}
	cdone := ctx.Done()
	if cdone == nil {
		<-f.done
		return f.val, f.err
	}
	select {
	case <-f.done:
		return f.val, f.err
	case <-cdone:
		// Prefer a result that is already there.
		if f.state.Load() == resolved {
			return f.val, f.err
		}
		var zero T
		return zero, context.Cause(ctx)
	}
}

// Poll answers at once: the result once resolved, or ErrNotReady while the
// operation is pending.
func (f *Future[T]) Poll() (T, error) {
	if f.state.Load() == resolved {
		return f.val, f.err
	}
	var zero T
	return zero, ErrNotReady
}

// Done returns a channel that is closed when the future resolves.
func (f *Future[T]) Done() <-chan struct{} { return f.done }

// Err returns the operation's error once resolved, or ErrNotReady while it is
// pending. It lets code that handles futures of several types (a Queue's
// caller) check the outcome without knowing T.
func (f *Future[T]) Err() error {
	if f.state.Load() == resolved {
		return f.err
	}
	return ErrNotReady
}

// OnResolve arranges for fn to run once the future has resolved: at once, on
// the calling goroutine, when it already has; otherwise on the goroutine that
// resolves it, after the waiters are woken. fn must not block: it runs on an
// engine's goroutine.
func (f *Future[T]) OnResolve(fn func()) {
	f.mu.Lock()
	if f.state.Load() != resolved {
		// A resolution in progress takes the hooks only after it holds mu, so
		// appending here is still seen by it.
		f.hooks = append(f.hooks, fn)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	fn()
}

// Awaitable is what every *Future[T] is, whatever T: the part a Queue needs.
type Awaitable interface {
	Done() <-chan struct{}
	Err() error
	OnResolve(fn func())
}

var _ Awaitable = (*Future[[]byte])(nil)
