package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// TestREADME: the first Go block under README.md's "## Quick start" is
// this program from its package clause on, so the Quick start compiles as
// written (go build and go vet compile this file).
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := bytes.Cut(readme, []byte("\n## Quick start\n"))
	if !ok {
		t.Fatal(`README.md has no "## Quick start" section`)
	}
	_, block, ok := bytes.Cut(section, []byte("\n```go\n"))
	if !ok {
		t.Fatal("README.md's Quick start has no Go block")
	}
	block, _, ok = bytes.Cut(block, []byte("\n```\n"))
	if !ok {
		t.Fatal("README.md's Quick start block does not end")
	}
	i := bytes.Index(src, []byte("package main\n"))
	if i < 0 {
		t.Fatal("main.go has no package clause")
	}
	want := strings.TrimSpace(string(src[i:]))
	got := strings.TrimSpace(string(block))
	if got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for n := range min(len(gl), len(wl)) {
			if gl[n] != wl[n] {
				t.Fatalf("README.md's Quick start differs from cmd/quickstart/main.go at its line %d:\nREADME:  %q\nmain.go: %q", n+1, gl[n], wl[n])
			}
		}
		t.Fatalf("README.md's Quick start has %d lines, cmd/quickstart/main.go %d from its package clause", len(gl), len(wl))
	}
}
