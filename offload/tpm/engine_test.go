package tpm

import (
	"context"
	"crypto"
	"testing"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/conformance"
)

// TestConformance runs the shared suite on swtpm with the salted, encrypted
// session on: keys imported (so the published vectors run) or generated in
// the TPM.
func TestConformance(t *testing.T) {
	// One swtpm for every engine the suite makes (each Close leaves the TPM
	// empty), started before the suite's leak checks look.
	s := swtpm.Start(t)
	conformance.Run(t, func(t *testing.T) conformance.Setup {
		e, err := Open(testCtx(t), Config{Address: s.Addr, MaxInFlight: 4})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey, Saturate: saturate(e)}
	})
}

// saturate holds every in-flight slot of e with a hash session until the
// returned release is called.
func saturate(e *Engine) func(t *testing.T) func() {
	return func(t *testing.T) func() {
		var held []offload.HashSession
		for range e.Info().MaxInFlight {
			hs, err := e.HashSession(context.Background(), crypto.SHA256)
			if err != nil {
				t.Fatalf("HashSession: %v", err)
			}
			held = append(held, hs)
		}
		return func() {
			for _, hs := range held {
				hs.Close()
			}
		}
	}
}
