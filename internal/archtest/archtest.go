// Package archtest states which way the module's imports may point and
// checks an import graph against it. The test in this package reads the
// module's real graph with `go list -json ./...` (with cgo on and off) and
// fails naming every edge that breaks a rule.
//
// # Classes
//
// Every package of the module belongs to one class; a package that fits
// none fails the check, so a new directory needs a decision here.
//
//   - contract: offload, the core every other part speaks. Standard library
//     only, and nothing else of the module. Its tests may use the internal
//     test helpers, and its external test package (package offload_test,
//     where the examples live) an engine, as any user does.
//   - suite: offload/conformance, the test suite every engine runs. It
//     receives engines from its caller, so its code imports no engine and no
//     adapter; it applies the fault-injecting wrapper from outside. Its own
//     tests run it on an engine.
//   - wrapper: offload/inject and offload/compose, which take engines and
//     return engines. Their code imports the contract and internal/
//     packages, never an engine; their tests wrap real engines.
//   - engine: offload/soft, offload/pkcs11, offload/tpm, offload/qat and
//     their subpackages. An engine, its tests included, imports the
//     contract, internal/ packages and its own subpackages; its tests may
//     also run the suite. It never imports an adapter, another engine or the
//     wrapper.
//   - internal: internal/..., shared below the engines (the executor, the
//     encoders) and the test helpers. Like an engine, tests included, it
//     imports only the contract and other internal packages.
//   - adapter: signer, hasher, cipher, rng, tlsconfig. Library code imports
//     the contract and internal/ packages, never an engine, the wrapper, the
//     suite or another adapter. Tests assemble the parts as a program does:
//     they may use engines, the wrapper and other adapters.
//   - program: cmd/NAME and everything under it. A program may import any
//     library package; nothing outside cmd/NAME imports cmd/NAME/....
//
// Outside the module: the contract uses the standard library only, and a
// module whose package is built with cgo (github.com/miekg/pkcs11) is
// imported only by the engine that binds it. A file that says import "C"
// must be on the list of binding files (CgoFiles).
package archtest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Package is one package of the module as the check sees it. Paths in the
// module are given relative to the module's root ("offload/soft"); paths
// outside it in full.
type Package struct {
	Path         string
	Imports      []string // library code
	TestImports  []string // files of the package's own test (package x)
	XTestImports []string // files of its external test (package x_test)
	CgoFiles     []string // library files that import "C"
}

// Set names which files of a package an import comes from.
type Set string

// The three sets of files of a package.
const (
	Library Set = "library code"
	Test    Set = "test"
	XTest   Set = "external test"
)

// A Violation is one import that breaks a rule, or one cgo file not on the
// list.
type Violation struct {
	From, To string // To is a file name for cgo violations
	Set      Set
	Rule     string
}

func (v Violation) String() string {
	if v.To == "" {
		return fmt.Sprintf("%s: %s", v.From, v.Rule)
	}
	return fmt.Sprintf("%s -> %s (%s): %s", v.From, v.To, v.Set, v.Rule)
}

// An Edge is an import from one package to another, in any of its sets.
type Edge struct{ From, To string }

// Policy is what the check holds a graph to.
type Policy struct {
	// Module is the module's path; imports under it are the module's own.
	Module string
	// Engines, Wrappers and Adapters list the packages of those classes,
	// relative to the module; a package under one belongs to it.
	Engines, Wrappers, Adapters []string
	// CgoModules are paths outside the module whose packages use cgo, with
	// the engines allowed to import them.
	CgoModules map[string][]string
	// CgoFiles lists, per package, the files allowed to import "C".
	CgoFiles map[string][]string
	// Allowed are known edges that break a rule and are excused, each one
	// until the change that removes it; Check reports which were used.
	Allowed []Edge
}

// Rules is the policy of this module.
var Rules = Policy{
	Module:   "github.com/offcrypt/offcrypt",
	Engines:  []string{"offload/soft", "offload/pkcs11", "offload/tpm", "offload/qat"},
	Wrappers: []string{"offload/inject", "offload/compose"},
	Adapters: []string{"signer", "hasher", "cipher", "rng", "tlsconfig"},
	CgoModules: map[string][]string{
		"github.com/miekg/pkcs11": {"offload/pkcs11"},
	},
	// The binding files: the only ones that may say import "C". offload/qat's
	// device binding joins them when it lands.
	CgoFiles: map[string][]string{
		"offload/pkcs11": {"sym.go"},
	},
	// Known edges that break a rule, each excused until the change that
	// removes it, which deletes its line here too. The test fails when an
	// edge on this list is gone from the graph, so none outlives its cause.
	Allowed: []Edge{},
}

type class int

const (
	unknown class = iota
	contract
	suite
	wrapper
	engine
	internal
	adapter
	program
)

var classNames = [...]string{"unclassified", "the contract", "the conformance suite", "the engine wrapper",
	"an engine", "an internal package", "an adapter", "a program"}

func (c class) String() string { return classNames[c] }

// node is a package's class and the unit it belongs to: the engine, adapter
// or program whose tree it is in ("" for the other classes).
type node struct {
	class class
	unit  string
}

func under(path, root string) bool { return path == root || strings.HasPrefix(path, root+"/") }

func (p *Policy) classify(rel string) node {
	switch {
	case rel == "offload":
		return node{contract, ""}
	case under(rel, "offload/conformance"):
		return node{suite, ""}
	case under(rel, "internal"):
		return node{internal, ""}
	case under(rel, "cmd"):
		name, _, _ := strings.Cut(strings.TrimPrefix(rel, "cmd/"), "/")
		return node{program, "cmd/" + name}
	}
	for _, e := range p.Engines {
		if under(rel, e) {
			return node{engine, e}
		}
	}
	for _, w := range p.Wrappers {
		if under(rel, w) {
			return node{wrapper, ""}
		}
	}
	for _, a := range p.Adapters {
		if under(rel, a) {
			return node{adapter, a}
		}
	}
	return node{unknown, ""}
}

// rel returns path relative to the module, and whether it is in the module.
func (p *Policy) rel(path string) (string, bool) {
	if path == p.Module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, p.Module+"/")
	return r, ok
}

// standard reports whether path is in the standard library: its first
// element has no dot, as every module path outside it has.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// Check returns every violation in pkgs, sorted, and the allowed edges that
// excused one.
func (p *Policy) Check(pkgs []Package) (violations []Violation, used []Edge) {
	for _, pkg := range pkgs {
		from, ok := p.rel(pkg.Path)
		if !ok {
			continue
		}
		fn := p.classify(from)
		if fn.class == unknown {
			violations = append(violations, Violation{from, "", Library,
				"a package in no class: decide what it is in internal/archtest"})
			continue
		}
		for _, set := range []struct {
			set     Set
			imports []string
		}{{Library, pkg.Imports}, {Test, pkg.TestImports}, {XTest, pkg.XTestImports}} {
			for _, imp := range set.imports {
				rule := p.rule(from, fn, set.set, imp)
				if rule == "" {
					continue
				}
				to, _ := p.rel(imp)
				if to == "" {
					to = imp
				}
				if e := (Edge{from, to}); slices.Contains(p.Allowed, e) {
					if !slices.Contains(used, e) {
						used = append(used, e)
					}
					continue
				}
				violations = append(violations, Violation{from, to, set.set, rule})
			}
		}
		for _, f := range pkg.CgoFiles {
			if !slices.Contains(p.CgoFiles[from], f) {
				violations = append(violations, Violation{from, f, Library,
					`import "C" outside the binding files listed in internal/archtest`})
			}
		}
	}
	sort.Slice(violations, func(i, j int) bool { return violations[i].String() < violations[j].String() })
	return violations, used
}

// rule returns why the import of imp by the package from (of node fn), in
// the given set of files, is not allowed, or "" when it is.
func (p *Policy) rule(from string, fn node, set Set, imp string) string {
	to, inModule := p.rel(imp)
	if !inModule {
		return p.outsideRule(from, fn, imp)
	}
	tn := p.classify(to)
	if tn.class == program {
		if fn.class == program && fn.unit == tn.unit {
			return ""
		}
		return "a program's helper imported from outside the program"
	}
	if tn.class == unknown {
		return "imports a package in no class: decide what it is in internal/archtest"
	}
	if fn.unit != "" && fn.unit == tn.unit {
		return "" // within one engine, adapter or program
	}
	tests := set != Library
	var ok bool
	switch fn.class {
	case program:
		ok = true
	case contract:
		ok = tn.class == contract || tests && tn.class == internal || set == XTest && tn.class == engine
	case suite:
		ok = tn.class == contract || tn.class == internal || tn.class == wrapper || tn.class == suite ||
			tests && tn.class == engine
	case wrapper:
		ok = tn.class == contract || tn.class == internal || tn.class == wrapper ||
			tests && (tn.class == engine || tn.class == suite)
	case engine:
		ok = tn.class == contract || tn.class == internal || tests && tn.class == suite
	case internal:
		ok = tn.class == contract || tn.class == internal
	case adapter:
		ok = tn.class == contract || tn.class == internal ||
			tests && (tn.class == engine || tn.class == wrapper || tn.class == adapter)
	}
	switch {
	case ok:
		return ""
	case fn.class == tn.class:
		return fmt.Sprintf("%s imports another", fn.class)
	}
	return fmt.Sprintf("%s imports %s", fn.class, tn.class)
}

// outsideRule is rule for an import from outside the module.
func (p *Policy) outsideRule(from string, fn node, imp string) string {
	if fn.class == contract && !standard(imp) && imp != "C" {
		return "the contract imports outside the standard library"
	}
	for mod, users := range p.CgoModules {
		if under(imp, mod) && fn.class != program && !slices.Contains(users, fn.unit) {
			return "a cgo binding module imported outside the engine that binds it"
		}
	}
	return ""
}
