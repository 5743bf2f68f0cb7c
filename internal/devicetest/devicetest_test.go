package devicetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestNeed: a gate that passes records "ran"; one that finds its device
// missing records "skipped" with the reason, and skips the test.
func TestNeed(t *testing.T) {
	t.Setenv("CI", "")
	report := filepath.Join(t.TempDir(), "report")
	t.Setenv(ReportEnv, report)

	Need(t, SWTPM, "", "apt-get install swtpm")
	var skipped bool
	t.Run("missing", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Need(t, Peers, "curl not found", "apt-get install curl")
		t.Error("Need did not skip")
	})
	if !skipped {
		t.Error("the missing device's test was not skipped")
	}
	got, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	want := "swtpm\tran\t\ncurl and openssl\tskipped\tcurl not found: install it (apt-get install curl)\n"
	if string(got) != want {
		t.Errorf("report\n%q\nwant\n%q", got, want)
	}
}

// closer counts its Close calls.
type closer struct{ closed int }

func (c *closer) Close() error { c.closed++; return nil }

// TestOpened: an engine that opened is closed when the test ends; one the
// build cannot open (errors.ErrUnsupported) skips the test.
func TestOpened(t *testing.T) {
	c := &closer{}
	t.Run("opened", func(t *testing.T) {
		if got := Opened(t, c, nil); got != c {
			t.Fatalf("Opened returned %v", got)
		}
		if c.closed != 0 {
			t.Fatal("closed before the test ended")
		}
	})
	if c.closed != 1 {
		t.Fatalf("closed %d times when the test ended, want 1", c.closed)
	}
	skipped := t.Run("unsupported", func(t *testing.T) {
		Opened(t, (*closer)(nil), fmt.Errorf("engine: built without cgo: %w", errors.ErrUnsupported))
		t.Error("not skipped")
	})
	if !skipped {
		t.Error("the unsupported case failed instead of skipping")
	}
}
