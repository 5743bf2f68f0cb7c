package archtest

import (
	"slices"
	"testing"
)

// m makes a path in the module.
func m(rel string) string { return Rules.Module + "/" + rel }

func ms(rels ...string) []string {
	var out []string
	for _, r := range rels {
		out = append(out, m(r))
	}
	return out
}

// TestCheck runs the check on small made-up graphs: one wrong edge each,
// and the edges that are right.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkgs []Package
		want []string
	}{
		{"the graph as it should be", []Package{
			{Path: m("offload"), Imports: []string{"context", "crypto"}, TestImports: ms("internal/leakcheck"), XTestImports: ms("offload", "offload/soft", "internal/testwait")},
			{Path: m("offload/soft"), Imports: ms("offload", "internal/exec"), TestImports: ms("internal/leakcheck"), XTestImports: ms("offload/conformance", "offload/soft")},
			{Path: m("offload/pkcs11"), Imports: append(ms("offload", "offload/pkcs11/internal/wire"), "github.com/miekg/pkcs11"), CgoFiles: []string{"sym.go"}},
			{Path: m("offload/pkcs11/internal/wire"), Imports: ms("offload")},
			{Path: m("offload/conformance"), Imports: ms("offload", "offload/inject", "internal/leakcheck"), TestImports: ms("offload/soft")},
			{Path: m("offload/inject"), Imports: ms("offload", "internal/facet"), XTestImports: ms("offload/soft", "offload/conformance")},
			{Path: m("offload/compose"), Imports: ms("offload", "internal/facet"), XTestImports: ms("offload/soft", "offload/qat", "offload/conformance")},
			{Path: m("internal/exec"), Imports: ms("offload"), TestImports: ms("internal/leakcheck")},
			{Path: m("hasher"), Imports: ms("offload", "internal/exec"), XTestImports: ms("hasher", "signer", "offload/soft", "offload/inject")},
			{Path: m("tlsconfig"), Imports: ms("offload"), TestImports: ms("signer", "rng", "offload/soft", "internal/localca")},
			{Path: m("cmd/demo"), Imports: ms("cmd/demo/experiment", "offload/soft", "signer", "tlsconfig")},
			{Path: m("cmd/demo/experiment"), Imports: ms("offload/soft", "internal/localca")},
			{Path: "example.com/other", Imports: ms("cmd/demo/experiment", "offload/soft")},
		}, nil},
		{"the contract imports an engine", []Package{
			{Path: m("offload"), Imports: ms("offload/soft")},
		}, []string{"offload -> offload/soft (library code): the contract imports an engine"}},
		{"the contract's own test imports an engine", []Package{
			{Path: m("offload"), TestImports: ms("offload/soft")},
		}, []string{"offload -> offload/soft (test): the contract imports an engine"}},
		{"the contract's examples use an adapter", []Package{
			{Path: m("offload"), XTestImports: ms("signer")},
		}, []string{"offload -> signer (external test): the contract imports an adapter"}},
		{"the contract imports an internal package", []Package{
			{Path: m("offload"), Imports: ms("internal/exec")},
		}, []string{"offload -> internal/exec (library code): the contract imports an internal package"}},
		{"the contract imports a third-party module", []Package{
			{Path: m("offload"), Imports: []string{"golang.org/x/crypto/cryptobyte"}},
		}, []string{"offload -> golang.org/x/crypto/cryptobyte (library code): the contract imports outside the standard library"}},
		{"the suite imports an engine", []Package{
			{Path: m("offload/conformance"), Imports: ms("offload/soft")},
		}, []string{"offload/conformance -> offload/soft (library code): the conformance suite imports an engine"}},
		{"the suite imports an adapter", []Package{
			{Path: m("offload/conformance"), Imports: ms("hasher")},
		}, []string{"offload/conformance -> hasher (library code): the conformance suite imports an adapter"}},
		{"the wrapper imports an engine", []Package{
			{Path: m("offload/inject"), Imports: ms("offload/soft")},
		}, []string{"offload/inject -> offload/soft (library code): the engine wrapper imports an engine"}},
		{"the composing wrapper imports an engine", []Package{
			{Path: m("offload/compose"), Imports: ms("offload/qat")},
		}, []string{"offload/compose -> offload/qat (library code): the engine wrapper imports an engine"}},
		{"an engine imports the composing wrapper", []Package{
			{Path: m("offload/soft"), Imports: ms("offload/compose")},
		}, []string{"offload/soft -> offload/compose (library code): an engine imports the engine wrapper"}},
		{"an engine imports another", []Package{
			{Path: m("offload/pkcs11"), Imports: ms("offload/soft")},
		}, []string{"offload/pkcs11 -> offload/soft (library code): an engine imports another"}},
		{"an engine imports another's subpackage", []Package{
			{Path: m("offload/tpm"), Imports: ms("offload/pkcs11/internal/wire")},
		}, []string{"offload/tpm -> offload/pkcs11/internal/wire (library code): an engine imports another"}},
		{"an engine's test imports another engine", []Package{
			{Path: m("offload/pkcs11"), XTestImports: ms("offload/soft")},
		}, []string{"offload/pkcs11 -> offload/soft (external test): an engine imports another"}},
		{"an engine's test imports an adapter", []Package{
			{Path: m("offload/pkcs11"), TestImports: ms("hasher")},
		}, []string{"offload/pkcs11 -> hasher (test): an engine imports an adapter"}},
		{"an engine imports the wrapper", []Package{
			{Path: m("offload/qat"), Imports: ms("offload/inject")},
		}, []string{"offload/qat -> offload/inject (library code): an engine imports the engine wrapper"}},
		{"an engine's library code imports the suite", []Package{
			{Path: m("offload/soft"), Imports: ms("offload/conformance")},
		}, []string{"offload/soft -> offload/conformance (library code): an engine imports the conformance suite"}},
		{"an adapter imports an engine", []Package{
			{Path: m("signer"), Imports: ms("offload/soft")},
		}, []string{"signer -> offload/soft (library code): an adapter imports an engine"}},
		{"an adapter imports another", []Package{
			{Path: m("hasher"), Imports: ms("signer")},
		}, []string{"hasher -> signer (library code): an adapter imports another"}},
		{"an adapter imports the wrapper", []Package{
			{Path: m("rng"), Imports: ms("offload/inject")},
		}, []string{"rng -> offload/inject (library code): an adapter imports the engine wrapper"}},
		{"an internal package imports an engine", []Package{
			{Path: m("internal/handshakedelay"), Imports: ms("offload/soft", "tlsconfig")},
		}, []string{
			"internal/handshakedelay -> offload/soft (library code): an internal package imports an engine",
			"internal/handshakedelay -> tlsconfig (library code): an internal package imports an adapter",
		}},
		{"an internal package's test imports an engine", []Package{
			{Path: m("internal/exec"), TestImports: ms("offload/soft")},
		}, []string{"internal/exec -> offload/soft (test): an internal package imports an engine"}},
		{"the library imports a program's helper", []Package{
			{Path: m("tlsconfig"), TestImports: ms("cmd/demo/experiment")},
		}, []string{"tlsconfig -> cmd/demo/experiment (test): a program's helper imported from outside the program"}},
		{"a program imports another program's helper", []Package{
			{Path: m("cmd/b"), Imports: ms("cmd/demo/experiment")},
		}, []string{"cmd/b -> cmd/demo/experiment (library code): a program's helper imported from outside the program"}},
		{"a cgo binding module outside its engine", []Package{
			{Path: m("offload/soft"), Imports: []string{"github.com/miekg/pkcs11"}},
		}, []string{"offload/soft -> github.com/miekg/pkcs11 (library code): a cgo binding module imported outside the engine that binds it"}},
		{"cgo outside the binding files", []Package{
			{Path: m("offload/pkcs11"), CgoFiles: []string{"sym.go", "engine.go"}},
			{Path: m("offload/soft"), CgoFiles: []string{"sym.go"}},
		}, []string{
			`offload/pkcs11 -> engine.go (library code): import "C" outside the binding files listed in internal/archtest`,
			`offload/soft -> sym.go (library code): import "C" outside the binding files listed in internal/archtest`,
		}},
		{"a package in no class", []Package{
			{Path: m("util"), Imports: ms("offload")},
			{Path: m("offload/extra")},
		}, []string{
			"offload/extra: a package in no class: decide what it is in internal/archtest",
			"util: a package in no class: decide what it is in internal/archtest",
		}},
		{"an import of a package in no class", []Package{
			{Path: m("signer"), Imports: ms("util")},
		}, []string{"signer -> util (library code): imports a package in no class: decide what it is in internal/archtest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Rules
			p.Allowed = nil
			got, used := p.Check(tc.pkgs)
			var gotS []string
			for _, v := range got {
				gotS = append(gotS, v.String())
			}
			if !slices.Equal(gotS, tc.want) {
				t.Errorf("violations:\n got %q\nwant %q", gotS, tc.want)
			}
			if used != nil {
				t.Errorf("no edge is allowed, yet %v were used", used)
			}
		})
	}
}

// TestCheckAllowed checks that an allowed edge is excused and reported as
// used, in every set of files, and that it excuses nothing else.
func TestCheckAllowed(t *testing.T) {
	p := Rules
	p.Allowed = []Edge{{"offload/soft", "offload/inject"}}
	got, used := p.Check([]Package{
		{Path: m("offload/soft"), Imports: ms("offload/inject"), XTestImports: ms("offload/inject", "offload/pkcs11")},
		{Path: m("offload/pkcs11"), Imports: ms("offload/inject")},
	})
	want := []string{
		"offload/pkcs11 -> offload/inject (library code): an engine imports the engine wrapper",
		"offload/soft -> offload/pkcs11 (external test): an engine imports another",
	}
	var gotS []string
	for _, v := range got {
		gotS = append(gotS, v.String())
	}
	if !slices.Equal(gotS, want) {
		t.Errorf("violations:\n got %q\nwant %q", gotS, want)
	}
	if !slices.Equal(used, p.Allowed) {
		t.Errorf("used %v, want %v", used, p.Allowed)
	}
}
