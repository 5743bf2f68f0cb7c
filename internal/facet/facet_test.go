package facet

import (
	"context"
	"crypto"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

// engine is a base with no optional interface; its methods are never called.
type engine struct{ offload.Engine }

type (
	im  struct{}
	gen struct{}
	hs  struct{}
)

func (im) ImportKey(any) (*offload.Key, error) { return nil, nil }
func (gen) GenerateKey(context.Context, offload.KeyType, int) (*offload.Key, error) {
	return nil, nil
}
func (hs) HashSession(context.Context, crypto.Hash) (offload.HashSession, error) { return nil, nil }

// TestWith: every combination gives exactly the interfaces asked for, and
// Base finds the wrapper again.
func TestWith(t *testing.T) {
	for mask := range 8 {
		var (
			i offload.Importer
			g offload.Generator
			h offload.HashSessioner
		)
		if mask&1 != 0 {
			i = im{}
		}
		if mask&2 != 0 {
			g = gen{}
		}
		if mask&4 != 0 {
			h = hs{}
		}
		base := &engine{}
		e := With(base, i, g, h)
		_, gotI := e.(offload.Importer)
		_, gotG := e.(offload.Generator)
		_, gotH := e.(offload.HashSessioner)
		if gotI != (i != nil) || gotG != (g != nil) || gotH != (h != nil) {
			t.Errorf("mask %03b: Importer %v, Generator %v, HashSessioner %v", mask, gotI, gotG, gotH)
		}
		if Base(e) != offload.Engine(base) {
			t.Errorf("mask %03b: Base does not find the wrapper", mask)
		}
	}
	other := &engine{}
	if Base(other) != offload.Engine(other) {
		t.Error("Base of an engine With did not make")
	}
}
