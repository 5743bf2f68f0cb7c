package leakcheck

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		bound = 200 * time.Millisecond
	}
	os.Exit(Run(m))
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = append(r.failed, format)
	for _, a := range args {
		if err, ok := a.(error); ok {
			r.failed = append(r.failed, err.Error())
		}
	}
}

// parked runs until stop closes: the goroutine the tests leak on purpose,
// named so that its stack is recognisable.
func parked(stop <-chan struct{}) { <-stop }

// brief ends soon after it starts, as a worker on its way out does.
func brief() { time.Sleep(20 * time.Millisecond) }

// TestCheck runs Check around goroutines that end and goroutines that do
// not. The case that matters most: a goroutine that ran before Check ends
// while one started after it leaks, which leaves the count unchanged.
func TestCheck(t *testing.T) {
	defer func(d time.Duration) { bound = d }(bound)
	bound = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		// run makes the case's goroutines around a Check of tb; stop is
		// closed when the case is over.
		run  func(tb testing.TB, stop chan struct{})
		leak bool
	}{
		{"nothing started", func(tb testing.TB, stop chan struct{}) { Check(tb)() }, false},
		{"a goroutine that ends", func(tb testing.TB, stop chan struct{}) {
			done := Check(tb)
			go brief()
			done()
		}, false},
		{"a goroutine from before runs on", func(tb testing.TB, stop chan struct{}) {
			go parked(stop)
			Check(tb)()
		}, false},
		{"a leak", func(tb testing.TB, stop chan struct{}) {
			done := Check(tb)
			go parked(stop)
			done()
		}, true},
		{"a leak while a goroutine from before ends", func(tb testing.TB, stop chan struct{}) {
			old, exited := make(chan struct{}), make(chan struct{})
			go func() { parked(old); close(exited) }()
			done := Check(tb)
			go parked(stop)
			close(old)
			<-exited
			done()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			defer close(stop)
			r := &recorder{TB: t}
			tc.run(r, stop)
			failure := strings.Join(r.failed, "\n")
			switch {
			case tc.leak && !strings.Contains(failure, "leakcheck.parked"):
				t.Fatalf("the leak was not reported with its stack: %q", failure)
			case !tc.leak && failure != "":
				t.Fatalf("reported a leak where there is none: %s", failure)
			}
		})
	}
}

const childEnv = "LEAKCHECK_CHILD"

// TestChildLeaks leaks a goroutine when run as the child of TestRunFindsLeak.
func TestChildLeaks(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestRunFindsLeak in a child process")
	}
	go parked(make(chan struct{}))
}

// TestRunFindsLeak runs a test that leaks in a child process and checks
// that Run, in the child's TestMain, fails the run and names the goroutine.
func TestRunFindsLeak(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildLeaks$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("the child exited with %v, want status 1; its output:\n%s", err, out)
	}
	for _, want := range []string{"leakcheck: goroutines left running after the tests", "leakcheck.parked"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the child's output lacks %q:\n%s", want, out)
		}
	}
}
