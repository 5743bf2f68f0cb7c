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
		return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey, Saturate: saturate(e)}
	})
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
