// Package leakcheck finds goroutines that tests leave running. It tells
// goroutines apart by identity and stack (go.uber.org/goleak), never by
// count, so a goroutine that ends cannot hide one that leaks.
//
// Two checks, used together:
//
//   - Run, from a package's TestMain, fails the run if any goroutine is left
//     once all of the package's tests have run and what they share (a shared
//     engine, a server process) is released.
//   - Check, inside one test, fails that test if a goroutine started after
//     Check (bar the testing package's and the runtime's) is still running
//     when the function it returns is called: after Close, typically.
//     Goroutines that ran before Check, such as a long-lived engine that
//     other tests share, are not its business.
//
// Both give goroutines that are on their way out (a timer callback, a worker
// that saw its channel close) up to 10 seconds to end. Tests that use Check
// must not call t.Parallel: goroutines of a test running beside it would be
// taken for its own.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bound is how long goroutines get to end before they count as leaked.
var bound = 10 * time.Second

// Check notes which goroutines run now and returns a function that fails t,
// listing the stack of every goroutine started since that is still running
// after 10 seconds. Call it before making what is under test, and the
// function it returns after closing it:
//
//	done := leakcheck.Check(t)
//	eng := …
//	eng.Close()
//	done()
func Check(t testing.TB) func() {
	t.Helper()
	before := goleak.IgnoreCurrent()
	return func() {
		t.Helper()
		if err := find(before); err != nil {
			t.Errorf("leakcheck: goroutines left running: %v", err)
		}
	}
}

// Run runs m's tests, then calls each of release (which end what the tests
// share), then looks for goroutines left running, and returns the exit code
// for os.Exit: m.Run's, or 1 when the tests passed but left goroutines
// behind, whose stacks it prints. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
func Run(m *testing.M, release ...func()) int {
	code := m.Run()
	for _, r := range release {
		r()
	}
	if code != 0 {
		return code // the failures say more than the goroutines they left
	}
	if err := find(); err != nil {
		fmt.Fprintf(os.Stderr, "leakcheck: goroutines left running after the tests: %v\n", err)
		return 1
	}
	return 0
}

// find returns goleak's report of the goroutines running that opts do not
// exclude, once they have had bound to end, or nil when none are left.
func find(opts ...goleak.Option) error {
	deadline := time.Now().Add(bound)
	for {
		// Find itself retries for about half a second before it reports.
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
