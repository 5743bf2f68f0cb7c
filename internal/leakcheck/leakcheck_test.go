package leakcheck

import (
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = format
}

func TestCheckPasses(t *testing.T) {
	done := Check(t)
	stop := make(chan struct{})
	go func() { <-stop }()
	close(stop)
	done()
}

func TestCheckFindsLeak(t *testing.T) {
	defer func(d time.Duration) { timeout = d }(timeout)
	timeout = 50 * time.Millisecond
	r := &recorder{TB: t}
	before := Check(r)
	stop := make(chan struct{})
	go func() { <-stop }()
	start := time.Now()
	before()
	close(stop)
	if !strings.Contains(r.failed, "goroutine leak") {
		t.Fatalf("a goroutine left running was not reported (waited %v)", time.Since(start))
	}
}
