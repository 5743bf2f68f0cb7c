package testwait

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
)

// TestMain fails the run if the tests leave a goroutine running.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// fataler is a testing.TB whose Fatalf records the message and ends the
// goroutine, as testing's does.
type fataler struct {
	testing.TB
	msg string
}

func (f *fataler) Helper() {}
func (f *fataler) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// future is a write-once result, shaped as offload.Future.
type future struct {
	done chan struct{}
	v    int
}

func (f *future) Wait(ctx context.Context) (int, error) {
	select {
	case <-f.done:
		return f.v, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (f *future) Done() <-chan struct{} { return f.done }

// TestWaits runs every wait on a condition that comes true and on one that
// never does: the first returns, the second fails naming what it waited for.
func TestWaits(t *testing.T) {
	defer func(d time.Duration) { bound = d }(bound)
	bound = 50 * time.Millisecond
	for _, tc := range []struct {
		name string
		// wait waits on something that is ready when ready is true.
		wait func(tb testing.TB, ready bool)
	}{
		{"Recv", func(tb testing.TB, ready bool) {
			ch := make(chan int, 1)
			if ready {
				ch <- 7
			}
			if v := Recv(tb, ch, "the value"); v != 7 {
				t.Errorf("Recv = %d, want 7", v)
			}
		}},
		{"Recv closed", func(tb testing.TB, ready bool) {
			ch := make(chan error)
			if ready {
				close(ch)
			}
			Recv(tb, ch, "the value")
		}},
		{"Done", func(tb testing.TB, ready bool) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if ready {
				cancel()
			}
			Done(tb, ctx, "the value")
		}},
		{"Wait", func(tb testing.TB, ready bool) {
			f := &future{done: make(chan struct{}), v: 3}
			if ready {
				close(f.done)
			}
			if v, err := Wait(tb, f, "the value"); v != 3 || err != nil {
				t.Errorf("Wait = %d, %v", v, err)
			}
		}},
		{"Group", func(tb testing.TB, ready bool) {
			var wg sync.WaitGroup
			wg.Add(1)
			if ready {
				wg.Done()
			} else {
				defer wg.Done() // after the failure: Group's goroutine ends
			}
			Group(tb, &wg, "the value")
		}},
		{"Until", func(tb testing.TB, ready bool) {
			n := 0
			Until(tb, "the value", func() bool { n++; return ready && n > 3 })
		}},
	} {
		for _, ready := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/ready=%v", tc.name, ready), func(t *testing.T) {
				f := &fataler{TB: t}
				returned := make(chan bool)
				go func() {
					defer close(returned)
					tc.wait(f, ready)
					returned <- true
				}()
				if <-returned != ready {
					t.Fatalf("the wait returned: %v, want %v (failure %q)", !ready, ready, f.msg)
				}
				if ready && f.msg != "" || !ready && !strings.Contains(f.msg, "testwait: the value: ") {
					t.Fatalf("failure %q", f.msg)
				}
			})
		}
	}
}

// TestWaitKeepsError checks that Wait hands back the future's own error,
// even a context error, when the future resolved in time.
func TestWaitKeepsError(t *testing.T) {
	_, err := Wait(t, errFuture{context.Canceled}, "the value")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

type errFuture struct{ err error }

func (f errFuture) Wait(context.Context) (int, error) { return 0, f.err }
