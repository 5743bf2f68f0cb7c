//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"errors"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

// TestNilContext: the engine's own context-taking methods, beyond the
// Engine interface the conformance suite checks, refuse a nil context with
// an error wrapping offload.ErrInvalid instead of panicking.
func TestNilContext(t *testing.T) {
	var nilCtx context.Context
	if e, err := Open(nilCtx, Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN)}); e != nil || !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Open(nil) = %v, %v", e, err)
	}
	e := openEngine(t, 1)
	if k, err := e.FindKey(nilCtx, "pkcs11:object=ec256;type=private"); k != nil || !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("FindKey(nil) = %v, %v", k, err)
	}
	if k, err := e.GenerateKey(nilCtx, offload.KeyECDSAP256, 0); k != nil || !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("GenerateKey(nil) = %v, %v", k, err)
	}
	if _, err := e.Digest(nilCtx, crypto.SHA256, []byte("x")).Wait(context.Background()); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Digest(nil) = %v", err)
	}
	hs, err := e.HashSession(context.Background(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if _, err := hs.Update(nilCtx, []byte("x")).Wait(context.Background()); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Update(nil) = %v", err)
	}
	if _, err := hs.Final(nilCtx).Wait(context.Background()); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Final(nil) = %v", err)
	}
}
