// Package softhsm prepares SoftHSM2 tokens for tests: a configuration and a
// token directory of their own in a temporary directory, never the
// machine's /etc/softhsm, and tokens initialised with softhsm2-util.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialised
// (C_Initialize), which happens once per process while an engine holds the
// module: a test binary points SOFTHSM2_CONF at one configuration before
// its first engine opens.
package softhsm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is SoftHSM2's PKCS #11 module as Debian installs it.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// SOPIN is the security officer PIN of every token Setup makes.
const SOPIN = "12345678"

// A Token is a token to initialise: its label and user PIN.
type Token struct {
	Label, PIN string
}

// Missing says why SoftHSM2 cannot be used on this machine, or "" when it
// can.
func Missing() string {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return "softhsm2-util not found"
	}
	if _, err := os.Stat(Module); err != nil {
		return Module + " not found"
	}
	return ""
}

// Setup writes a SoftHSM2 configuration whose token directory is under dir,
// initialises tokens there, and returns the configuration's path, the value
// SOFTHSM2_CONF must have when the module is initialised.
func Setup(dir string, tokens ...Token) (conf string, err error) {
	if why := Missing(); why != "" {
		return "", fmt.Errorf("softhsm: %s", why)
	}
	tokdir := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokdir, 0o700); err != nil {
		return "", err
	}
	conf = filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokdir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", err
	}
	for _, tk := range tokens {
		cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", tk.Label, "--so-pin", SOPIN, "--pin", tk.PIN)
		cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("softhsm: initialising token %q: %v\n%s", tk.Label, err, out)
		}
	}
	return conf, nil
}

// Start makes the tokens in a directory of t's, points SOFTHSM2_CONF at
// them for t (so t cannot run in parallel) and returns the configuration's
// path. Without SoftHSM2 the test is skipped with an install hint, or fails
// when CI=true. The module must not be initialised in the process yet:
// close every engine on it before t ends.
func Start(t testing.TB, tokens ...Token) string {
	t.Helper()
	if why := Missing(); why != "" {
		msg := why + ": install softhsm2 (apt-get install softhsm2)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	conf, err := Setup(t.TempDir(), tokens...)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return conf
}
