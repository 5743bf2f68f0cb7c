package offload

import (
	"context"
	"sync"
)

// A Completion is one finished operation collected from a Queue: the future
// (resolved; read its result with Poll or Wait, which return at once) and the
// tag it was added with.
type Completion struct {
	Future Awaitable
	Tag    any
}

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
// ends first.
func (q *Queue) Collect(ctx context.Context, dst []Completion) (int, error) {
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
