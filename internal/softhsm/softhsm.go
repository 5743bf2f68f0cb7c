// Package softhsm makes SoftHSM2 tokens for tests: a configuration and a
// token directory in a new temporary directory, SOFTHSM2_CONF pointed at
// it for the whole process, and tokens initialised with softhsm2-util.
//
// SoftHSM reads SOFTHSM2_CONF when its module is initialised, and a module
// is initialised once per process, so the configuration belongs to the
// process: a test binary makes one HSM with New, sets it up (Setup, or the
// first Need) before any test opens the module, and removes the directory
// at the end (Remove, typically as a leakcheck.Run release).
package softhsm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Module is where Debian and Ubuntu install SoftHSM2's PKCS #11 module.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// A Token is one token to initialise: its label and user PIN (the security
// officer's PIN is always 12345678).
type Token struct {
	Label, PIN string
}

// An HSM is the process's SoftHSM2, or why there is none.
type HSM struct {
	tokens []Token
	once   sync.Once

	// Dir is the temporary directory holding the configuration and the
	// tokens; "" when nothing was made.
	Dir string
	// Missing says why SoftHSM2 cannot be used here ("softhsm2-util not
	// found"); "" when it can.
	Missing string
	// Err is a failure while preparing it.
	Err error
}

// New returns an HSM that will initialise tokens; nothing is made until
// Setup or Need.
func New(tokens ...Token) *HSM { return &HSM{tokens: tokens} }

// Token returns the first token, the one PIN answers for.
func (h *HSM) Token() Token { return h.tokens[0] }

// PIN returns the first token's PIN, as a PIN callback of the pkcs11
// engine's Config.
func (h *HSM) PIN(context.Context) ([]byte, error) { return []byte(h.tokens[0].PIN), nil }

// Setup makes the configuration and initialises the tokens, once; later
// calls do nothing. It never fails outright: what went wrong is in the HSM,
// for Need to report in each test that needs it, so that a test binary
// whose other tests need no HSM still runs them.
func (h *HSM) Setup() { h.once.Do(h.setup) }

func (h *HSM) setup() {
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		h.Missing = "softhsm2-util not found"
		return
	}
	if _, err := os.Stat(Module); err != nil {
		h.Missing = Module + " not found"
		return
	}
	if h.Dir, h.Err = os.MkdirTemp("", "offcrypt-softhsm-"); h.Err != nil {
		return
	}
	dir := filepath.Join(h.Dir, "tokens")
	if h.Err = os.Mkdir(dir, 0o700); h.Err != nil {
		return
	}
	conf := filepath.Join(h.Dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", dir)
	if h.Err = os.WriteFile(conf, []byte(body), 0o600); h.Err != nil {
		return
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	for _, tk := range h.tokens {
		if h.Err = Run(util, "--init-token", "--free", "--label", tk.Label, "--so-pin", "12345678", "--pin", tk.PIN); h.Err != nil {
			return
		}
	}
}

// Run runs a command and returns its output in the error when it fails.
func Run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// Need sets the HSM up if it is not yet, skips t when SoftHSM2 is not
// installed or the build has no cgo (which the pkcs11 engine needs), or
// fails it when CI=true (where SoftHSM2 must be), and fails it when Setup
// failed.
func (h *HSM) Need(t testing.TB) {
	t.Helper()
	if !cgo {
		t.Skip("the pkcs11 engine needs cgo")
	}
	h.Setup()
	if h.Missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: install softhsm2 (apt-get install softhsm2)", h.Missing)
		}
		t.Skipf("%s: install softhsm2 (apt-get install softhsm2)", h.Missing)
	}
	if h.Err != nil {
		t.Fatalf("setting up SoftHSM2: %v", h.Err)
	}
}

// Remove removes the temporary directory, if Setup made one.
func (h *HSM) Remove() {
	if h.Dir != "" {
		os.RemoveAll(h.Dir)
	}
}
