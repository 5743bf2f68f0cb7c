package qat

import (
	"context"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload/conformance"
)

// TestConformance runs the shared suite on tier 1, the model, on both
// generations, and with GCM requests batched.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  Generation
		cfg  Config
	}{
		{"gen2", Gen2, Config{}},
		{"gen4", Gen4, Config{}},
		{"gen2/batch", Gen2, Config{Batch: 8, BatchWait: 50 * time.Microsecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) conformance.Setup {
				m, err := NewModel(ModelConfig{Gen: tc.gen})
				if err != nil {
					t.Fatal(err)
				}
				cfg := tc.cfg
				cfg.Model = m
				e, err := Open(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey, Refuse: refuse}
			})
		})
	}
}

// refuse opens engines with each numeric option at -1.
func refuse(t *testing.T) map[string]error {
	out := make(map[string]error)
	for name, cfg := range map[string]Config{
		"Config.PollInterval":  {PollInterval: -1},
		"Config.PollThreshold": {PollThreshold: -1},
		"Config.Retries":       {Retries: -1},
		"Config.MaxBackoff":    {MaxBackoff: -1},
		"Config.MaxInline":     {MaxInline: -1},
		"Config.Batch":         {Batch: -1},
		"Config.BatchWait":     {BatchWait: -1},
	} {
		e, err := Open(context.Background(), cfg)
		if err == nil {
			e.Close()
		}
		out[name] = err
	}
	return out
}
