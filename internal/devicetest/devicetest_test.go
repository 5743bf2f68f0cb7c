package devicetest

import (
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
