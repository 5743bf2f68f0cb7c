// Package messagetest checks, in tests, the errors a person reads: that an
// error happened, that errors.Is finds its sentinel, and that its whole
// text is what the table says.
package messagetest

import (
	"errors"
	"regexp"
	"testing"
)

// Check fails t unless err is not nil, matches is with errors.Is (when is
// is not nil), and its text matches pattern, a regular expression that must
// match the whole message.
func Check(t testing.TB, err, is error, pattern string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
		return // for a testing.TB whose Fatal returns
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%v: not %v", err, is)
	}
	if !regexp.MustCompile(`^(?:` + pattern + `)$`).MatchString(err.Error()) {
		t.Errorf("message\n\t%s\ndoes not match\n\t%s", err, pattern)
	}
}
