package messagetest

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// fakeT records what Check reports instead of failing the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Fatal(...any)          { f.failed = true }
func (f *fakeT) Fatalf(string, ...any) { f.failed = true }
func (f *fakeT) Logf(string, ...any)   {}
func (f *fakeT) Error(...any)          { f.failed = true }

func TestCheck(t *testing.T) {
	sentinel := errors.New("sentinel")
	err := fmt.Errorf("pkg: what happened: %w", sentinel)
	for _, tt := range []struct {
		name    string
		err     error
		is      error
		pattern string
		fail    bool
	}{
		{"match", err, sentinel, `pkg: what happened: sentinel`, false},
		{"pattern", err, sentinel, `pkg: .* sentinel`, false},
		{"no sentinel needed", err, nil, `pkg: what happened: sentinel`, false},
		{"only a prefix", err, sentinel, `pkg: what happened`, true},
		{"only a suffix", err, sentinel, `what happened: sentinel`, true},
		{"wrong sentinel", err, errors.New("other"), `pkg: what happened: sentinel`, true},
		{"no error", nil, nil, `.*`, true},
	} {
		f := &fakeT{TB: t}
		Check(f, tt.err, tt.is, tt.pattern)
		if f.failed != tt.fail {
			t.Errorf("%s: failed %v, want %v", tt.name, f.failed, tt.fail)
		}
	}
}
