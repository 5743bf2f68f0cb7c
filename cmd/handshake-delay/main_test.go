package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs the command small and checks that its table has both rows
// with every handshake ok, without looking at any time.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 300*time.Millisecond, 6, 2, "ecdsa"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"engine max in flight", "ratio stacked/async", "-stacked-n 6"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	var rows int
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && (f[0] == "async" || f[0] == "stacked") {
			rows++
			if f[2] != f[3] {
				t.Errorf("%s: %s of %s handshakes ok", f[0], f[3], f[2])
			}
		}
	}
	if rows != 2 {
		t.Errorf("%d result rows:\n%s", rows, s)
	}
	if err := run(context.Background(), &out, time.Millisecond, 1, 0, "dsa"); err == nil {
		t.Error("run with -alg dsa succeeded")
	}
}
