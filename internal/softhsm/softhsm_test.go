package softhsm

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestStart: the tokens asked for are initialised under a configuration of
// the test's own, which SOFTHSM2_CONF names, and nowhere else.
func TestStart(t *testing.T) {
	conf := Start(t, Token{Label: "first", PIN: "1111"}, Token{Label: "second", PIN: "2222"})
	if got := os.Getenv("SOFTHSM2_CONF"); got != conf {
		t.Fatalf("SOFTHSM2_CONF is %q, not %q", got, conf)
	}
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --show-slots: %v\n%s", err, out)
	}
	for _, label := range []string{"first", "second"} {
		if !strings.Contains(string(out), "Label:            "+label) {
			t.Errorf("no token %q in:\n%s", label, out)
		}
	}
	if n := strings.Count(string(out), "Initialized:      yes"); n != 2 {
		t.Errorf("%d initialised tokens, want 2:\n%s", n, out)
	}
}

// TestSetupRefusesAUsedDirectory: a directory that holds tokens already is
// not silently shared.
func TestSetupRefusesAUsedDirectory(t *testing.T) {
	if Missing() != "" {
		t.Skip(Missing())
	}
	dir := t.TempDir()
	if _, err := Setup(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Setup(dir, Token{Label: "again", PIN: "1"}); err == nil {
		t.Fatal("a second Setup in one directory succeeded")
	}
}
