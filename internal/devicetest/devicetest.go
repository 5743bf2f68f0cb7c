// Package devicetest gates the tests that need a device or a tool
// installed on the machine (SoftHSM2, p11-kit, swtpm, curl and openssl,
// tpm2-tools, OpenSSL's tpm2 provider) and records which gates each test
// passed or skipped, so that .ci/test can end with a summary: a green run
// on a machine without the devices must not look like a full run.
//
// A missing device skips the test with what to install, except when
// CI=true, where it fails the test.
//
// # The report
//
// When the environment variable named by ReportEnv holds a file name,
// every gate appends one line to that file: the group, "ran" or "skipped",
// and, for a skip, why, separated by tabs. Lines are written with one
// append each, so the test binaries that go test runs in parallel can
// share the file.
package devicetest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// The device-backed groups, as the summary names them.
const (
	SoftHSM2    = "SoftHSM2"
	PKCS11Tool  = "OpenSC pkcs11-tool"
	P11Kit      = "p11-kit remote token"
	SWTPM       = "swtpm"
	TPM2Tools   = "tpm2-tools"
	TPM2OpenSSL = "OpenSSL tpm2 provider"
	Peers       = "curl and openssl"
)

// ReportEnv is the environment variable that names the report file.
const ReportEnv = "OFFCRYPT_DEVICE_REPORT"

// Need gates t on group. missing is "" when what the group needs is there;
// otherwise it says what is missing and install how to get it (an
// apt-get command line). Need records the outcome and, when something is
// missing, skips t, or fails it when CI=true.
func Need(t testing.TB, group, missing, install string) {
	t.Helper()
	if missing == "" {
		record(t, group, "ran", "")
		return
	}
	msg := missing + ": install it (" + install + ")"
	if os.Getenv("CI") == "true" {
		record(t, group, "failed", msg)
		t.Fatalf("%s: %s (CI=true: a missing device fails the run)", group, msg)
	}
	record(t, group, "skipped", msg)
	t.Skipf("%s: %s", group, msg)
}

// record appends one line to the report, if there is one. A report that
// cannot be written fails t: the summary would be wrong.
func record(t testing.TB, group, status, why string) {
	t.Helper()
	name := os.Getenv(ReportEnv)
	if name == "" {
		return
	}
	line := fmt.Sprintf("%s\t%s\t%s\n", group, status, strings.ReplaceAll(why, "\n", " "))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("device report: %v", err)
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("device report: %v", err)
	}
}

// Opened returns e, what an engine's constructor returned with err, and
// closes it when t ends. A constructor that failed because the build lacks
// what the engine needs (an error wrapping errors.ErrUnsupported, which is
// what the pkcs11 and tpm engines answer in a build without cgo) skips t;
// any other failure fails it.
func Opened[E io.Closer](t testing.TB, e E, err error) E {
	t.Helper()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}
