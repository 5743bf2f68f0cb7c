package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listed is the part of `go list -json` the check reads.
type listed struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	CgoFiles     []string
	Error        *struct{ Err string }
}

// goList runs `go list -e -json ./...` at the module's root with env added
// to the environment, and returns the module's packages.
func goList(t *testing.T, root string, env ...string) []Package {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-e", "-json", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list with %v: %v\n%s", env, err, stderr.Bytes())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list with %v: decoding its output: %v", env, err)
		}
		if l.Error != nil {
			t.Errorf("go list with %v: %s: %s", env, l.ImportPath, l.Error.Err)
		}
		pkgs = append(pkgs, Package{Path: l.ImportPath, Imports: l.Imports, TestImports: l.TestImports,
			XTestImports: l.XTestImports, CgoFiles: l.CgoFiles})
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list with %v listed no packages", env)
	}
	return pkgs
}

// moduleRoot returns the directory of the module this test is in.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not in a module")
	}
	return filepath.Dir(gomod)
}

// TestArrows reads the module's import graph, with cgo and without (build
// constraints change which files, hence which imports, a package has), and
// fails on every edge that points the wrong way.
func TestArrows(t *testing.T) {
	root := moduleRoot(t)
	envs := [][]string{
		{"CGO_ENABLED=1"},
		{"CGO_ENABLED=0"},
		{"CGO_ENABLED=0", "GOOS=windows"}, // tlsconfig has files per OS
	}
	var used []Edge
	ran := 0
	for _, env := range envs {
		t.Run(strings.Join(env, ","), func(t *testing.T) {
			ran++
			violations, u := Rules.Check(goList(t, root, env...))
			for _, v := range violations {
				t.Errorf("%v", v)
			}
			for _, e := range u {
				if !slices.Contains(used, e) {
					used = append(used, e)
				}
			}
		})
	}
	if ran < len(envs) {
		return // -run chose some: an edge may be in the graphs left out
	}
	for _, e := range Rules.Allowed {
		if !slices.Contains(used, e) {
			t.Errorf("%s -> %s is on Rules.Allowed but no longer in the graph: delete it from the list", e.From, e.To)
		}
	}
}
