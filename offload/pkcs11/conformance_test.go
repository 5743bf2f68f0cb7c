//go:build cgo

package pkcs11

import (
	"context"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/conformance"
)

// TestConformance runs the shared suite against SoftHSM2, with keys
// imported (so the suite's known-key vectors run) and, where an import is
// refused, generated on the token.
func TestConformance(t *testing.T) {
	needHSM(t)
	conformance.Run(t, func(t *testing.T) conformance.Setup {
		e, err := Open(context.Background(), Config{
			Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey, Saturate: saturate(e), Refuse: refuse}
	})
}

// refuse opens engines on the suite's token with each numeric option at -1.
func refuse(t *testing.T) map[string]error {
	errs := make(map[string]error)
	for name, set := range map[string]func(*Config){
		"Config.MaxInFlight":      func(c *Config) { c.MaxInFlight = -1 },
		"Config.MaxInline":        func(c *Config) { c.MaxInline = -1 },
		"Config.BreakerThreshold": func(c *Config) { c.BreakerThreshold = -1 },
		"Config.BreakerCooldown":  func(c *Config) { c.BreakerCooldown = -1 },
	} {
		c := Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN)}
		set(&c)
		e, err := Open(context.Background(), c)
		if err == nil {
			e.Close()
		}
		errs[name] = err
	}
	return errs
}

// saturate fills every session of e until the returned release is called.
func saturate(e *Engine) func(t *testing.T) func() {
	return func(t *testing.T) func() {
		release := make(chan struct{})
		var held []*offload.Future[[]byte]
		for range e.Info().MaxInFlight {
			started := make(chan struct{})
			held = append(held, block(e, context.Background(), started, release))
			<-started
		}
		return func() {
			close(release)
			for _, f := range held {
				f.Wait(context.Background())
			}
		}
	}
}
