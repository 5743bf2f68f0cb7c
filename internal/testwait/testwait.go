// Package testwait gives tests waits with a bound: a test that waits on a
// channel, a WaitGroup, a future or a condition fails with a message naming
// what it waited for, instead of hanging until the test binary's timeout.
//
// Every wait gives up after a minute: far beyond what any test here needs,
// even a device's under the race detector on a busy machine, and well inside
// go test's default timeout of ten minutes. The helpers call t.Fatalf, so they belong on the test's
// own goroutine.
package testwait

import (
	"context"
	"sync"
	"testing"
	"time"
)

// bound is how long a wait lasts before the test fails.
var bound = time.Minute

// Recv returns the next value from ch, or the zero value once ch is closed,
// and fails t if neither happens within the bound.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("testwait: %s: nothing after %v", what, bound)
		panic("unreachable")
	}
}

// Done waits until d's Done channel closes (a future's, a context's), and
// fails t if it does not within the bound.
func Done(t testing.TB, d interface{ Done() <-chan struct{} }, what string) {
	t.Helper()
	Recv(t, d.Done(), what)
}

// Wait waits for f (an *offload.Future) with a context that ends after the
// bound, and returns its result; it fails t if f has not resolved by then.
func Wait[T any](t testing.TB, f interface {
	Wait(context.Context) (T, error)
}, what string) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	v, err := f.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("testwait: %s: not resolved after %v", what, bound)
	}
	return v, err
}

// Group waits for wg, and fails t if its count does not reach zero within
// the bound. (The goroutine that waits for wg then stays behind: the test
// has failed by then.)
func Group(t testing.TB, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	Recv(t, done, what)
}

// Until calls cond until it reports true, and fails t if it does not within
// the bound.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testwait: %s: not true after %v", what, bound)
		}
		time.Sleep(time.Millisecond)
	}
}
