package qat

import (
	"context"
	"testing"

	"github.com/offcrypt/offcrypt/offload/conformance"
)

// TestConformance runs the shared suite on tier 1, the model, on both
// generations.
func TestConformance(t *testing.T) {
	for _, gen := range []Generation{Gen2, Gen4} {
		t.Run(gen.String(), func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) conformance.Setup {
				m, err := NewModel(ModelConfig{Gen: gen})
				if err != nil {
					t.Fatal(err)
				}
				e, err := Open(context.Background(), Config{Model: m})
				if err != nil {
					t.Fatal(err)
				}
				return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey}
			})
		})
	}
}
