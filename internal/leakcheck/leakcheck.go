// Package leakcheck finds goroutines that a test leaves running: the check
// every engine test and the conformance suite make after Close.
package leakcheck

import (
	"runtime"
	"testing"
	"time"
)

// timeout is how long Wait gives goroutines to end: they may be on their
// way out (a timer callback, a worker seeing its channel closed).
var timeout = 10 * time.Second

// Check counts the goroutines running now and returns a function that waits
// until no more than that many run, and fails t, listing every goroutine's
// stack, if that does not happen within 10 seconds. Call it before making what
// is under test and the function it returns after closing it:
//
//	done := leakcheck.Check(t)
//	eng := …
//	eng.Close()
//	done()
func Check(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		Wait(t, before)
	}
}

// Wait waits until no more than before goroutines run, and fails t with every
// goroutine's stack if that does not happen within 10 seconds.
func Wait(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d running, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(time.Millisecond)
	}
}
