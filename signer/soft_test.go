package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

func init() {
	engines = append(engines, engineCase{"soft", func(t *testing.T, inj inject.Options) (offload.Engine, offload.Importer) {
		e := newSoftEngine(t, soft.Options{Workers: 2, Latency: inj.Latency, Jitter: inj.Jitter, NotReady: inj.NotReady, Faults: inj.Faults})
		return e, e
	}})
}

func newSoftEngine(t *testing.T, o soft.Options) *soft.Engine {
	t.Helper()
	e, err := soft.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func generate(t *testing.T, e *soft.Engine, kt offload.KeyType, bits int) *signer.Signer {
	t.Helper()
	k, err := e.GenerateKey(context.Background(), kt, bits)
	if err != nil {
		t.Fatalf("GenerateKey(%v): %v", kt, err)
	}
	s, err := signer.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCirclKeys signs with Ed448 and ML-DSA keys of the soft engine, options
// passed through, and verifies with circl.
func TestCirclKeys(t *testing.T) {
	e := newSoftEngine(t, soft.Options{Workers: 2})
	msg := []byte("post-quantum hello")
	ctx := []byte("offcrypt")

	t.Run("ML-DSA-65", func(t *testing.T) {
		s := generate(t, e, offload.KeyMLDSA65, 0)
		pub := s.Public().(*mldsa65.PublicKey)
		opts := &offload.MLDSAOptions{Context: ctx, Deterministic: true}
		sig1, err := s.SignMessage(nil, msg, opts)
		if err != nil {
			t.Fatal(err)
		}
		sig2, err := s.Sign(nil, msg, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !mldsa65.Verify(pub, msg, ctx, sig1) || !mldsa65.Verify(pub, msg, ctx, sig2) {
			t.Error("ML-DSA signature does not verify with its context")
		}
		if mldsa65.Verify(pub, msg, nil, sig1) {
			t.Error("ML-DSA signature verifies without its context: options were not passed")
		}
		if !bytes.Equal(sig1, sig2) {
			t.Error("deterministic ML-DSA signatures differ: options were not passed")
		}
		if _, err := s.Sign(nil, msg, crypto.SHA256); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("ML-DSA with SHA-256: err = %v, want ErrInvalid", err)
		}
	})
	t.Run("Ed448", func(t *testing.T) {
		s := generate(t, e, offload.KeyEd448, 0)
		pub := s.Public().(ed448.PublicKey)
		for _, sign := range []func() ([]byte, error){
			func() ([]byte, error) { return s.Sign(nil, msg, crypto.Hash(0)) },
			func() ([]byte, error) { return s.SignMessage(nil, msg, nil) },
		} {
			sig, err := sign()
			if err != nil {
				t.Fatal(err)
			}
			if !ed448.Verify(pub, msg, sig, "") {
				t.Error("Ed448 signature does not verify")
			}
		}
	})
}

// TestLargeMessage: a message above the engine's cap is hashed in process
// when the options name a hash, and still verifies; without a hash the
// engine's refusal comes back.
func TestLargeMessage(t *testing.T) {
	e := newSoftEngine(t, soft.Options{MaxInline: 256})
	msg := bytes.Repeat([]byte("x"), 1000)
	for _, c := range signCases() {
		t.Run(c.name, func(t *testing.T) {
			s := newSigner(t, e, c.priv())
			vo := c.opts
			if c.verifyOpts != nil {
				vo = c.verifyOpts
			}
			sig, err := s.SignMessage(nil, msg, c.opts)
			if c.opts == nil || c.opts.HashFunc() == 0 {
				if err == nil {
					t.Fatalf("SignMessage of %d bytes over a %d-byte cap without a hash succeeded", len(msg), 256)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(s.Public(), msg, sig, vo); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPoll: Poll answers ErrNotReady while the operation is pending and the
// result after. The fake holds queued work on a gate; soft drops the
// request, which then resolves with its context's end.
func TestPoll(t *testing.T) {
	digest := sha256.Sum256([]byte("poll"))
	t.Run("fake", func(t *testing.T) {
		e := newFake(inject.Options{})
		e.gate = make(chan struct{})
		defer e.Close()
		s := newSigner(t, e, keyP256())
		f := s.SignAsync(context.Background(), digest[:], crypto.SHA256)
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Fatalf("Poll before completion: err = %v, want ErrNotReady", err)
		}
		// Many waiters at once, all released by one completion.
		var wg sync.WaitGroup
		sigs := make([][]byte, 32)
		errs := make([]error, 32)
		for i := range sigs {
			wg.Go(func() { sigs[i], errs[i] = f.Wait(context.Background()) })
		}
		close(e.gate)
		testwait.Group(t, &wg, "32 waiters on one future")
		for i := range sigs {
			if errs[i] != nil || verify(s.Public(), []byte("poll"), sigs[i], crypto.SHA256) != nil {
				t.Fatalf("waiter %d: err %v, or signature does not verify", i, errs[i])
			}
			if !bytes.Equal(sigs[i], sigs[0]) {
				t.Fatalf("waiter %d got another signature", i)
			}
		}
		sig, err := f.Poll()
		if err != nil || !bytes.Equal(sig, sigs[0]) {
			t.Fatalf("Poll after completion = %x, %v", sig, err)
		}
	})
	t.Run("soft", func(t *testing.T) {
		e := newSoftEngine(t, soft.Options{Faults: []inject.Fault{{Drop: true}}})
		s := newSigner(t, e, keyP256())
		ctx, cancel := context.WithCancel(context.Background())
		f := s.SignAsync(ctx, digest[:], crypto.SHA256)
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Fatalf("Poll before completion: err = %v, want ErrNotReady", err)
		}
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := f.Wait(context.Background()); !errors.Is(err, context.Canceled) {
					t.Errorf("Wait: err = %v, want context.Canceled", err)
				}
			})
		}
		cancel()
		testwait.Group(t, &wg, "16 waiters on a cancelled future")
		if _, err := f.Poll(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Poll after cancel: err = %v, want context.Canceled", err)
		}
	})
}

// TestManyWaiters waits on one soft future from many goroutines.
func TestManyWaiters(t *testing.T) {
	e := newSoftEngine(t, soft.Options{Workers: 2})
	s := newSigner(t, e, keyEd())
	msg := []byte("many")
	f := s.SignMessageAsync(context.Background(), msg, crypto.Hash(0))
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			sig, err := f.Wait(context.Background())
			if err != nil || verify(s.Public(), msg, sig, crypto.Hash(0)) != nil {
				t.Errorf("Wait: %v, or signature does not verify", err)
			}
		})
	}
	testwait.Group(t, &wg, "32 waiters on one future")
}

// TestFaultError: an engine failure reaches the caller of Sign with the
// device's error in the chain.
func TestFaultError(t *testing.T) {
	errDevice := errors.New("device on fire")
	e := newSoftEngine(t, soft.Options{Faults: []inject.Fault{{Every: 2, Err: errDevice}}})
	s := newSigner(t, e, keyP256())
	digest := sha256.Sum256(nil)
	var failed int
	for range 4 {
		if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			if !errors.Is(err, errDevice) {
				t.Errorf("err = %v, want the device's error", err)
			}
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d of 4 failed, want every second", failed)
	}
}

// TestInline: the blocking forms ask the engine to run on the caller's
// goroutine, the async forms do not. The fake holds queued work on a gate
// that never opens during the blocking calls.
func TestInline(t *testing.T) {
	e := newFake(inject.Options{})
	e.gate = make(chan struct{})
	defer e.Close()
	defer close(e.gate)
	s := newSigner(t, e, keyP256())
	d, err := signer.NewDecrypter(importKey(t, e, keyRSA()))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("inline"))
	ctx := context.Background()
	if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if _, err := s.SignMessageContext(ctx, []byte("inline"), crypto.SHA256); err != nil {
		t.Fatalf("SignMessageContext: %v", err)
	}
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, d.Public().(*rsa.PublicKey), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decrypt(nil, ct, nil); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	for name, f := range map[string]*offload.Future[[]byte]{
		"SignAsync":        s.SignAsync(ctx, digest[:], crypto.SHA256),
		"SignMessageAsync": s.SignMessageAsync(ctx, []byte("inline"), crypto.SHA256),
		"DecryptAsync":     d.DecryptAsync(ctx, ct, nil),
	} {
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Errorf("%s ran inline: Poll err = %v", name, err)
		}
	}
}

// TestNilContext: every context-taking method refuses a nil context with an
// error wrapping offload.ErrInvalid, the blocking ones and the futures
// alike, and reaches no engine.
func TestNilContext(t *testing.T) {
	e := newSoftEngine(t, soft.Options{})
	s := generate(t, e, offload.KeyECDSAP256, 0)
	d, err := signer.NewDecrypter(importKey(t, e, keyRSA()))
	if err != nil {
		t.Fatal(err)
	}
	var nilCtx context.Context
	digest := make([]byte, 32)
	_, err1 := s.SignContext(nilCtx, digest, crypto.SHA256)
	_, err2 := s.SignMessageContext(nilCtx, []byte("m"), crypto.SHA256)
	_, err3 := testwait.Wait(t, s.SignAsync(nilCtx, digest, crypto.SHA256), "SignAsync")
	_, err4 := testwait.Wait(t, s.SignMessageAsync(nilCtx, []byte("m"), crypto.SHA256), "SignMessageAsync")
	_, err5 := d.DecryptContext(nilCtx, make([]byte, 256), nil)
	_, err6 := testwait.Wait(t, d.DecryptAsync(nilCtx, make([]byte, 256), nil), "DecryptAsync")
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("call %d: %v; want an error wrapping offload.ErrInvalid", i+1, err)
		}
	}
	if n := e.Stats().Op(offload.OpSign).Submitted + e.Stats().Op(offload.OpDecrypt).Submitted; n != 0 {
		t.Errorf("%d requests reached the engine", n)
	}
}
