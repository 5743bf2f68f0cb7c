package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRun runs the whole program briefly: every case must produce a result
// through the engine, and every row must be printed.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark case briefly")
	}
	var out bytes.Buffer
	if err := run(&out, config{dur: 20 * time.Millisecond, reps: 1, only: "Ed25519"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| Ed25519 sign | 1 |", "future alone"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
