package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/conformance"
)

// openEngine starts a swtpm and opens an Engine on it with cfg (its Address
// set), closed when t ends.
func openEngine(t *testing.T, cfg Config) (*Engine, *swtpm.TPM) {
	t.Helper()
	s := swtpm.Start(t)
	cfg.Address = s.Addr
	e, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e, s
}

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

// TestRestartUnderLoad kills and restarts swtpm twice while eight callers
// sign with an ECDSA and an RSA key: every request resolves before its
// deadline, with a valid signature or an error that says the TPM could not
// be reached; after each restart the engine reconnects, re-creates its
// session, reloads its keys and signs again; Close returns.
func TestRestartUnderLoad(t *testing.T) {
	e, s := openEngine(t, Config{MaxInFlight: 8})
	ctx := testCtx(t)
	var keys []*offload.Key
	for _, kt := range []offload.KeyType{offload.KeyECDSAP256, offload.KeyRSA} {
		k, err := e.GenerateKey(ctx, kt, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	digest := sha256.Sum256([]byte("restart under load"))
	sign := func(k *offload.Key) error {
		rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sig, err := e.Sign(rctx, &offload.SignRequest{Key: k, Digest: digest[:], Opts: crypto.SHA256}).Wait(rctx)
		switch {
		case err == nil:
			return verify(k.Public(), digest[:], sig)
		case rctx.Err() != nil:
			return fmt.Errorf("no answer before the deadline: %w", err)
		case errors.Is(err, ErrTransport):
			return nil // the TPM was down: a clear error
		}
		return fmt.Errorf("unexpected error: %w", err)
	}
	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		ok   atomic.Int64
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := sign(keys[i%2]); err != nil {
					t.Errorf("caller %d: %v", i, err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	for cycle := range 2 {
		before := ok.Load()
		testwait.Until(t, "signatures before the restart", func() bool { return ok.Load() > before+20 })
		s.Restart(t)
		after := ok.Load()
		testwait.Until(t, fmt.Sprintf("signatures after restart %d", cycle+1), func() bool { return ok.Load() > after+20 })
	}
	stop.Store(true)
	testwait.Group(t, &wg, "signing callers")
	if e.x.Retried() == 0 {
		t.Error("no request was retried after a reconnection")
	}
	for _, k := range keys {
		if err := sign(k); err != nil {
			t.Errorf("%v after the restarts: %v", k.Type(), err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	if err := testwait.Recv(t, closed, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("%d signatures, %d requests retried after a reconnection", ok.Load(), e.x.Retried())
}

// verify checks an ECDSA (ASN.1) or RSA PKCS #1 v1.5 signature of a SHA-256
// digest.
func verify(pub crypto.PublicKey, digest, sig []byte) error {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, crypto.SHA256, digest, sig)
	}
	return fmt.Errorf("public key %T", pub)
}
