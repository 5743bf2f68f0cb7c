package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
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
		return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey, Saturate: saturate(e),
			Refuse: func(t *testing.T) map[string]error {
				errs := make(map[string]error)
				for name, set := range map[string]func(*Config){
					"Config.MaxInFlight":    func(c *Config) { c.MaxInFlight = -1 },
					"Config.Retries":        func(c *Config) { c.Retries = -1 },
					"Config.CommandTimeout": func(c *Config) { c.CommandTimeout = -1 },
				} {
					c := Config{Address: s.Addr}
					set(&c)
					e, err := Open(testCtx(t), c)
					if err == nil {
						e.Close()
					}
					errs[name] = err
				}
				return errs
			}}
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
		case errors.Is(err, offload.ErrUnavailable) && errors.Is(err, ErrTransport):
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

// signOnlyRSA makes an RSA-2048 key that may sign but not decrypt, so the
// engine cannot use it as a raw private key and signs with the TPM's own
// schemes.
func signOnlyRSA(t *testing.T, e *Engine) *offload.Key {
	t.Helper()
	ctx := testCtx(t)
	tmpl, err := KeySpec{Type: offload.KeyRSA}.template()
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ObjectAttributes.Decrypt = false
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.dev
	parent, err := d.srkHandle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rsp *tpm2.CreateResponse
	err = d.run(ctx, func(tp transport.TPM) (err error) {
		rsp, err = tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: parent, Name: d.srkName, Auth: d.authFor(nil, true, false)},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(tp)
		return err
	})
	d.unpin(d.srk)
	if err != nil {
		t.Fatal(err)
	}
	k, err := d.newTransient(ctx, rsp.OutPublic, rsp.OutPrivate)
	if err != nil {
		t.Fatal(err)
	}
	return e.newKey(k)
}

// TestEngineRequests checks what the engine does with keys of each kind,
// and the requests it refuses before the TPM.
func TestEngineRequests(t *testing.T) {
	e, _ := openEngine(t, Config{MaxInFlight: 2})
	ctx := testCtx(t)
	signOnly := signOnlyRSA(t, e)
	rsaKey, err := e.GenerateKey(ctx, offload.KeyRSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("engine requests"))
	pssHash := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	pssAuto := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}
	foreign := offload.NewKey(nil, offload.KeyECDSAP256, 256, ecKey.Public(), nil)
	for _, tc := range []struct {
		name string
		key  *offload.Key
		in   []byte
		opts crypto.SignerOpts
		want error // nil: the signature must verify
	}{
		{"sign-only RSA, PKCS #1 v1.5 (TPM2_Sign RSASSA)", signOnly, digest[:], crypto.SHA256, nil},
		{"sign-only RSA, PSS salt = hash (TPM2_Sign RSAPSS)", signOnly, digest[:], pssHash, nil},
		{"sign-only RSA, PSS longest salt", signOnly, digest[:], pssAuto, offload.ErrUnsupported},
		{"sign-only RSA, PKCS #1 v1.5 without a hash", signOnly, digest[:], crypto.Hash(0), offload.ErrUnsupported},
		{"raw RSA, PSS longest salt", rsaKey, digest[:], pssAuto, nil},
		{"raw RSA, PSS salt = hash", rsaKey, digest[:], pssHash, nil},
		{"ECDSA, digest of the wrong size", ecKey, digest[:20], crypto.SHA256, offload.ErrInvalid},
		{"ECDSA with SHA-224, which the TPM lacks", ecKey, digest[:28], crypto.SHA224, offload.ErrUnsupported},
		{"sign-only RSA with SHA-224", signOnly, digest[:28], crypto.SHA224, offload.ErrUnsupported},
		{"RSA options for an ECDSA key", ecKey, digest[:], pssHash, offload.ErrInvalid},
		{"a key of another engine", foreign, digest[:], crypto.SHA256, offload.ErrForeignKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := e.Sign(ctx, &offload.SignRequest{Key: tc.key, Digest: tc.in, Opts: tc.opts}).Wait(ctx)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want an error matching %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pub := tc.key.Public()
			switch o := tc.opts.(type) {
			case *rsa.PSSOptions:
				salt := o.SaltLength
				err = rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, tc.in, sig, &rsa.PSSOptions{SaltLength: salt})
			default:
				err = verify(pub, tc.in, sig)
			}
			if err != nil {
				t.Fatalf("does not verify: %v", err)
			}
		})
	}
	t.Run("decrypt with a sign-only key", func(t *testing.T) {
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, signOnly.Public().(*rsa.PublicKey), []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Decrypt(ctx, &offload.DecryptRequest{Key: signOnly, Ciphertext: ct}).Wait(ctx); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("got %v, want ErrInvalid", err)
		}
	})
	t.Run("ciphertext longer than the modulus", func(t *testing.T) {
		_, err := e.Decrypt(ctx, &offload.DecryptRequest{Key: rsaKey, Ciphertext: make([]byte, 257)}).Wait(ctx)
		if !errors.Is(err, offload.ErrInvalid) || !errors.Is(err, rsa.ErrDecryption) {
			t.Fatalf("got %v, want ErrInvalid and rsa.ErrDecryption", err)
		}
	})
	if got := e.Info().MaxInFlight; got != 2 {
		t.Errorf("Info().MaxInFlight = %d, want the configured 2", got)
	}
}

// TestKeyFileAcrossEngines writes a key file with one engine and signs with
// it through another engine on the same TPM, after the first closed.
func TestKeyFileAcrossEngines(t *testing.T) {
	e, s := openEngine(t, Config{})
	ctx := testCtx(t)
	key, err := e.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP384})
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := e.KeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := e.Sign(ctx, &offload.SignRequest{Key: key, Digest: make([]byte, 48), Opts: crypto.SHA384}).Wait(ctx); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("sign after Close: %v, want ErrClosed", err)
	}
	e2, err := Open(ctx, Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	loaded, err := e2.LoadKeyFile(ctx, pemBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum384([]byte("key file"))
	sig, err := e2.Sign(ctx, &offload.SignRequest{Key: loaded, Digest: digest[:], Opts: crypto.SHA384}).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("the key file's key does not sign as the original")
	}
	if _, err := e2.LoadKeyFile(ctx, []byte("-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n-----END TSS2 PRIVATE KEY-----\n"), nil); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("malformed key file: %v, want ErrInvalid", err)
	}
}

// TestHashSessionLeavesTheTPMToOthers holds a hash session open across
// signatures and another session: a session pins a worker, not the TPM, and
// its sequence moves in and out of the TPM's slots as the others need them.
func TestHashSessionLeavesTheTPMToOthers(t *testing.T) {
	e, _ := openEngine(t, Config{MaxInFlight: 3})
	ctx := testCtx(t)
	key, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("hash session "), 300) // several 1,024-byte updates
	var sessions []offload.HashSession
	for range 2 {
		hs, err := e.HashSession(ctx, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, hs)
	}
	for i := 0; i < len(msg); i += 1000 {
		chunk := msg[i:min(i+1000, len(msg))]
		for _, hs := range sessions {
			if _, err := hs.Update(ctx, chunk).Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		digest := sha256.Sum256(chunk)
		sig, err := e.Sign(ctx, &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}).Wait(ctx)
		if err != nil {
			t.Fatalf("sign while hash sessions are open: %v", err)
		}
		if err := verify(key.Public(), digest[:], sig); err != nil {
			t.Fatal(err)
		}
	}
	want := sha256.Sum256(msg)
	for i, hs := range sessions {
		sum, err := hs.Final(ctx).Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sum, want[:]) {
			t.Errorf("session %d: digest %x, want %x", i, sum, want)
		}
		if _, err := hs.Update(ctx, []byte("x")).Wait(ctx); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("session %d: Update after Final: %v, want ErrInvalid", i, err)
		}
	}
}
