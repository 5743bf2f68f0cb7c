package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/cmd/handshake-delay/experiment"
)

// TestCharts runs the sign suite (one algorithm, three caller counts) and
// the delay suite small with -chart, and checks that each chart is a
// well-formed SVG that names every side it plots.
func TestCharts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs signatures and TLS handshakes")
	}
	cfg := quick("sign", "delay")
	cfg.only = "Ed25519 sign"
	cfg.signCallers = []int{1, 2, 4}
	cfg.delay, cfg.n, cfg.stackedN = 20*time.Millisecond, 4, 2
	cfg.charts = new(charts)
	if err := run(io.Discard, cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := cfg.charts.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"throughput-soft.svg":  {"Ed25519 sign", "direct", "offcrypt", "callers"},
		"delay-handshakes.svg": {"async: 4 handshakes, engine limit 4", "stacked: 2 handshakes, engine limit 1"},
	}
	if got := slices.Sorted(slices.Values(files)); !slices.Equal(got, []string{"delay-handshakes.svg", "throughput-soft.svg"}) {
		t.Fatalf("wrote %v", got)
	}
	for file, texts := range want {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := wellFormed(b); err != nil {
			t.Errorf("%s: %v", file, err)
		}
		for _, s := range texts {
			if !bytes.Contains(b, []byte(s)) {
				t.Errorf("%s does not say %q", file, s)
			}
		}
	}
	// Each side has one point per caller count.
	p := cfg.charts.figures[0].panels[0]
	for _, s := range p.sides {
		if len(s.pts) != 3 {
			t.Errorf("%s: %d points, want 3", s.name, len(s.pts))
		}
	}
}

// TestChartsNil: without -chart the suites call a nil *charts, which must
// take what they record without panicking.
func TestChartsNil(t *testing.T) {
	var c *charts
	c.addRate("soft", "t", "p", "s", false, 1, 1)
	c.addDelay(experiment.Result{})
}

// wellFormed reports whether b is XML whose root is an svg element.
func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if !strings.EqualFold(root, "svg") {
		return &xml.SyntaxError{Msg: "root element " + root + ", want svg"}
	}
	return nil
}
