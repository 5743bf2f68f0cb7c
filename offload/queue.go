package offload

import (
	"context"
	"fmt"
	"sync"
)

// A Completion is one finished operation collected from a Queue: the future,
// resolved, and the tag it was added with. Result reads its value; Err reads
// its error whatever its type.
type Completion struct {
	Future Awaitable
	Tag    any
}

// Err returns the operation's error: nil when it succeeded.
func (c Completion) Err() error {
	if c.Future == nil {
		return errNoFuture
	}
	return c.Future.Err()
}

// Result returns the value and error of the operation c holds, whose future
// must be a *Future[T] (or another Awaitable with a Poll() (T, error)
// method): for a Queue that collects the futures of one kind of operation,
//
//	sig, err := offload.Result[[]byte](c)
//
// reads a Sign's signature. A queue may hold futures of several result
// types; a Result of the wrong type for c, or of a Completion without a
// future, returns T's zero value and an error wrapping ErrInvalid, never a
// panic.
func Result[T any](c Completion) (T, error) {
	p, ok := c.Future.(interface{ Poll() (T, error) })
	if !ok {
		var zero T
		if c.Future == nil {
			return zero, errNoFuture
		}
		return zero, fmt.Errorf("%w: Result[%T] of a completion holding a %T", ErrInvalid, zero, c.Future)
	}
	return p.Poll()
}

var errNoFuture = fmt.Errorf("%w: a completion without a future", ErrInvalid)

// A Queue collects finished operations in batches, so one goroutine can drive
// many operations without a goroutine per operation: add futures as they are
// submitted, then Collect or Poll the finished ones, like epoll_wait or
// wolfSSL_CTX_AsyncPoll. Futures come out in the order they resolved.
//
// A Queue is safe for concurrent use. Its zero value is not usable: call
// NewQueue.
type Queue struct {
	mu          sync.Mutex
	ready       []Completion
	outstanding int           // added and not yet collected
	signal      chan struct{} // holds a token while ready is non-empty
}

// NewQueue returns an empty completion queue.
func NewQueue() *Queue {
	return &Queue{signal: make(chan struct{}, 1)}
}

// Add watches f and makes it collectable, with tag, once it resolves. A
// future may be added to several queues; adding it twice to the same queue
// delivers it twice.
func (q *Queue) Add(f Awaitable, tag any) {
	q.mu.Lock()
	q.outstanding++
	q.mu.Unlock()
	f.OnResolve(func() {
		q.mu.Lock()
		q.ready = append(q.ready, Completion{Future: f, Tag: tag})
		q.mu.Unlock()
		select {
		case q.signal <- struct{}{}:
		default:
		}
	})
}

// Len returns the number of operations added and not yet collected, finished
// or not.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.outstanding
}

// Poll moves up to len(dst) finished operations into dst without blocking and
// returns how many it moved.
func (q *Queue) Poll(dst []Completion) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := copy(dst, q.ready)
	rest := copy(q.ready, q.ready[n:])
	clear(q.ready[rest:])
	q.ready = q.ready[:rest]
	q.outstanding -= n
	return n
}

// Collect waits until at least one operation has finished, then moves up to
// len(dst) of them into dst and returns how many it moved. It returns 0 and
// nil at once when nothing is outstanding, and 0 and ctx's error when ctx
// ends first. A nil ctx is refused with an error wrapping ErrInvalid (see
// CheckContext).
func (q *Queue) Collect(ctx context.Context, dst []Completion) (int, error) {
	if ctx == nil {
		return 0, errNilContext
	}
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		if n := q.Poll(dst); n > 0 {
			return n, nil
		}
		if q.Len() == 0 {
			return 0, nil
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}
