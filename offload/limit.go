package offload

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
)

// A Limiter bounds the number of operations an engine has in flight. Waiters
// are served first come, first served, so no caller starves behind later
// ones. Acquire honours its context and leaves the limiter unchanged when the
// context ends first.
//
// Taking and returning a slot while nobody waits costs one atomic operation
// each and no lock, so the limiter stays off the profile of an engine that
// runs short operations from many goroutines.
//
// Engines use one Limiter each; it is exported for engine authors.
type Limiter struct {
	size  int64
	cur   atomic.Int64 // slots held
	nwait atomic.Int64 // len(waiters), readable without mu

	mu      sync.Mutex
	waiters list.List // of chan struct{}, guarded by mu
}

// NewLimiter returns a limiter that admits n operations at once; n < 1 is
// taken as 1.
func NewLimiter(n int) *Limiter {
	return &Limiter{size: int64(max(n, 1))}
}

// Cap returns the limit.
func (l *Limiter) Cap() int { return int(l.size) }

// take takes a free slot if there is one.
func (l *Limiter) take() bool {
	for {
		c := l.cur.Load()
		if c >= l.size {
			return false
		}
		if l.cur.CompareAndSwap(c, c+1) {
			return true
		}
	}
}

// TryAcquire takes a slot if one is free now and reports whether it did.
// It does not jump the queue: with callers waiting it answers false.
func (l *Limiter) TryAcquire() bool {
	return l.nwait.Load() == 0 && l.take()
}

// Acquire takes a slot, waiting for one until ctx ends. On failure it
// returns ctx's error and holds nothing. A nil ctx is refused with an error
// wrapping ErrInvalid, whether a slot is free or not (see CheckContext).
func (l *Limiter) Acquire(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	if l.TryAcquire() {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ready := make(chan struct{})
	l.mu.Lock()
	// Count the waiter before looking for a slot again, so that a Release
	// that found no waiter has already freed the slot grant takes here.
	l.nwait.Add(1)
	elem := l.waiters.PushBack(ready)
	l.grant()
	l.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-ready:
			// Granted while we were giving up: hand the slot on.
			l.cur.Add(-1)
		default:
			l.waiters.Remove(elem)
			l.nwait.Add(-1)
		}
		// Either way a slot may now be free for the next waiter.
		l.grant()
		l.mu.Unlock()
		return context.Cause(ctx)
	}
}

// Release returns a slot taken by Acquire or TryAcquire.
func (l *Limiter) Release() {
	if l.cur.Add(-1) < 0 {
		l.cur.Add(1)
		panic("offload: Limiter.Release without Acquire")
	}
	if l.nwait.Load() != 0 {
		l.mu.Lock()
		l.grant()
		l.mu.Unlock()
	}
}

// InUse returns the number of slots held now.
func (l *Limiter) InUse() int { return int(l.cur.Load()) }

// grant admits waiters in order while slots are free. l.mu must be held.
func (l *Limiter) grant() {
	for {
		front := l.waiters.Front()
		if front == nil || !l.take() {
			return
		}
		l.waiters.Remove(front)
		l.nwait.Add(-1)
		close(front.Value.(chan struct{}))
	}
}
