package offload

import (
	"container/list"
	"context"
	"sync"
)

// A Limiter bounds the number of operations an engine has in flight. Waiters
// are served first come, first served, so no caller starves behind later
// ones. Acquire honours its context and leaves the limiter unchanged when the
// context ends first.
//
// Engines use one Limiter each; it is exported for engine authors.
type Limiter struct {
	mu      sync.Mutex
	size    int
	cur     int
	waiters list.List // of chan struct{}
}

// NewLimiter returns a limiter that admits n operations at once; n < 1 is
// taken as 1.
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = 1
	}
	return &Limiter{size: n}
}

// Cap returns the limit.
func (l *Limiter) Cap() int { return l.size }

// TryAcquire takes a slot if one is free now and reports whether it did.
// It never jumps the queue: with callers waiting it answers false.
func (l *Limiter) TryAcquire() bool {
	l.mu.Lock()
	ok := l.cur < l.size && l.waiters.Len() == 0
	if ok {
		l.cur++
	}
	l.mu.Unlock()
	return ok
}

// Acquire takes a slot, waiting for one until ctx ends. On failure it
// returns ctx's error and holds nothing.
func (l *Limiter) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.cur < l.size && l.waiters.Len() == 0 {
		l.cur++
		l.mu.Unlock()
		return nil
	}
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return context.Cause(ctx)
	}
	ready := make(chan struct{})
	elem := l.waiters.PushBack(ready)
	l.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-ready:
			// Granted while we were giving up: hand the slot on.
			l.cur--
			l.grant()
		default:
			l.waiters.Remove(elem)
			// Removing the head may let the next waiter in.
			l.grant()
		}
		l.mu.Unlock()
		return context.Cause(ctx)
	}
}

// Release returns a slot taken by Acquire or TryAcquire.
func (l *Limiter) Release() {
	l.mu.Lock()
	if l.cur <= 0 {
		l.mu.Unlock()
		panic("offload: Limiter.Release without Acquire")
	}
	l.cur--
	l.grant()
	l.mu.Unlock()
}

// InUse returns the number of slots held now.
func (l *Limiter) InUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// grant admits waiters in order while slots are free. l.mu must be held.
func (l *Limiter) grant() {
	for l.cur < l.size {
		front := l.waiters.Front()
		if front == nil {
			return
		}
		l.waiters.Remove(front)
		l.cur++
		close(front.Value.(chan struct{}))
	}
}
