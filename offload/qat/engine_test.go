package qat

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

// open returns an engine on a fresh model, closed when t ends.
func open(t *testing.T, mc ModelConfig, c Config) (*Engine, *Model) {
	t.Helper()
	m, err := NewModel(mc)
	if err != nil {
		t.Fatal(err)
	}
	c.Model = m
	e, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Resume()
		e.Close()
	})
	return e, m
}

var (
	rsaOnce sync.Once
	rsaPriv *rsa.PrivateKey
)

func rsa2048(t *testing.T) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaPriv = k
	})
	return rsaPriv
}

func importKey(t *testing.T, e *Engine, priv any) *offload.Key {
	t.Helper()
	k, err := e.ImportKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var digest = sha256.Sum256([]byte("offcrypt"))

func signReq(k *offload.Key) *offload.SignRequest {
	return &offload.SignRequest{Key: k, Digest: digest[:], Opts: crypto.SHA256}
}

// TestKeySizes: a key size the generation does not take is refused at
// import and at generation with ErrUnsupported.
func TestKeySizes(t *testing.T) {
	e, _ := open(t, ModelConfig{Gen: Gen2, NoLatency: true}, Config{})
	if _, err := e.GenerateKey(context.Background(), offload.KeyRSA, 8192); !errors.Is(err, offload.ErrUnsupported) {
		t.Errorf("RSA-8192 on Gen2: %v, want ErrUnsupported", err)
	}
	if _, err := e.GenerateKey(context.Background(), offload.KeyRSA, 1024); !errors.Is(err, offload.ErrUnsupported) {
		t.Errorf("RSA-1024 on Gen2: %v, want ErrUnsupported", err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ImportKey(p521); !errors.Is(err, offload.ErrUnsupported) {
		t.Errorf("P-521: %v, want ErrUnsupported", err)
	}
	if i := e.Info(); i.MaxRSABits != 4096 || i.Supports(offload.Random) || i.Supports(offload.Ed25519) {
		t.Errorf("Gen2 Info: %+v", i)
	}
	g4, _ := open(t, ModelConfig{Gen: Gen4, NoLatency: true}, Config{})
	if i := g4.Info(); i.MaxRSABits != 8192 {
		t.Errorf("Gen4 MaxRSABits %d", i.MaxRSABits)
	}
}

// TestLongAAD: GCM with more AAD than a session takes fails with
// ErrUnsupported before the device.
func TestLongAAD(t *testing.T) {
	e, _ := open(t, ModelConfig{NoLatency: true}, Config{})
	k := importKey(t, e, make([]byte, 16))
	for _, n := range []int{MaxAAD, MaxAAD + 1} {
		f := e.Cipher(context.Background(), &offload.CipherRequest{Key: k, Mode: offload.ModeGCM,
			IV: make([]byte, 12), AAD: make([]byte, n), Input: []byte("x")})
		_, err := testwait.Wait(t, f, "GCM seal")
		if n <= MaxAAD && err != nil || n > MaxAAD && !errors.Is(err, offload.ErrUnsupported) {
			t.Errorf("%d bytes of AAD: %v", n, err)
		}
	}
}

// TestRingFull: a ring that stays full fails a request when its context
// ends, and with ErrBusy after the retries when it does not; a ring that
// frees up takes it.
func TestRingFull(t *testing.T) {
	e, m := open(t, ModelConfig{NoLatency: true}, Config{Retries: 3})
	k := importKey(t, e, make([]byte, 16))
	req := &offload.CipherRequest{Key: k, Mode: offload.ModeGCM, IV: make([]byte, 12), Input: []byte("x")}
	m.FailSubmissions(StatusRetry)
	if _, err := testwait.Wait(t, e.Cipher(context.Background(), req), "seal on a full ring"); !errors.Is(err, offload.ErrBusy) {
		t.Errorf("a ring full past the retries: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := testwait.Wait(t, e.Cipher(ctx, req), "seal, context ended"); !errors.Is(err, context.Canceled) {
		t.Errorf("a ring full past the context: %v", err)
	}
	m.FailSubmissions(StatusSuccess)
	if _, err := testwait.Wait(t, e.Cipher(context.Background(), req), "seal"); err != nil {
		t.Errorf("after the ring freed: %v", err)
	}
}

// TestReset: a device reset with work in flight resolves every future once
// with StatusRestarting; submissions fail with it until the restart ends.
func TestReset(t *testing.T) {
	e, m := open(t, ModelConfig{}, Config{})
	k := importKey(t, e, rsa2048(t))
	m.Stall()
	fs := make([]*offload.Future[[]byte], 16)
	for i := range fs {
		fs[i] = e.Sign(context.Background(), signReq(k))
	}
	m.Reset()
	m.Resume()
	for _, f := range fs {
		if _, err := testwait.Wait(t, f, "sign across a reset"); !errors.Is(err, StatusRestarting) || !errors.Is(err, offload.ErrUnavailable) {
			t.Errorf("in flight across a reset: %v", err)
		}
	}
	if _, err := testwait.Wait(t, e.Sign(context.Background(), signReq(k)), "sign while restarting"); !errors.Is(err, StatusRestarting) {
		t.Errorf("while restarting: %v", err)
	}
	m.Restarted()
	if _, err := testwait.Wait(t, e.Sign(context.Background(), signReq(k)), "sign after restart"); err != nil {
		t.Errorf("after restart: %v", err)
	}
	if s := e.Stats().Op(offload.OpSign); s.Submitted != s.Completed+s.Failed || s.Failed != 17 {
		t.Errorf("stats after the reset: %+v", s)
	}
}

// TestFaults: a multiply failure is retried with a new nonce; too many
// fail with ErrMultiplyFailed; a wrong RSA result never leaves the engine;
// a failed request reports StatusFail.
func TestFaults(t *testing.T) {
	e, m := open(t, ModelConfig{NoLatency: true}, Config{})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ek := importKey(t, e, ec)
	rk := importKey(t, e, rsa2048(t))
	m.FailMultiply(maxNonces - 1)
	sig, err := testwait.Wait(t, e.Sign(context.Background(), signReq(ek)), "ECDSA after multiply failures")
	if err != nil || !ecdsa.VerifyASN1(&ec.PublicKey, digest[:], sig) {
		t.Errorf("ECDSA after %d multiply failures: %v", maxNonces-1, err)
	}
	m.FailMultiply(maxNonces)
	if _, err := testwait.Wait(t, e.Sign(context.Background(), signReq(ek)), "ECDSA, multiply failing"); !errors.Is(err, ErrMultiplyFailed) {
		t.Errorf("ECDSA, every multiply failing: %v", err)
	}
	m.CorruptRSA(1)
	if sig, err := testwait.Wait(t, e.Sign(context.Background(), signReq(rk)), "RSA, wrong result"); !errors.Is(err, ErrFaultCheck) || sig != nil {
		t.Errorf("a wrong RSA result: %x, %v", sig, err)
	}
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, &rsa2048(t).PublicKey, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	m.CorruptRSA(1)
	if pt, err := testwait.Wait(t, e.Decrypt(context.Background(), &offload.DecryptRequest{Key: rk, Ciphertext: ct}), "decrypt, wrong result"); !errors.Is(err, ErrFaultCheck) || pt != nil {
		t.Errorf("a wrong RSA decryption: %q, %v", pt, err)
	}
	m.FailNext(1)
	if _, err := testwait.Wait(t, e.Sign(context.Background(), signReq(ek)), "failed sign"); !errors.Is(err, StatusFail) {
		t.Errorf("a failed request: %v", err)
	}
	if pt, err := testwait.Wait(t, e.Decrypt(context.Background(), &offload.DecryptRequest{Key: rk, Ciphertext: ct}), "decrypt"); err != nil || string(pt) != "secret" {
		t.Errorf("decrypt after the faults: %q, %v", pt, err)
	}
}

// TestAbandoned: a request whose caller gave up resolves with the
// context's error at once; the device's late result is not delivered, and
// the slot comes back.
func TestAbandoned(t *testing.T) {
	e, m := open(t, ModelConfig{NoLatency: true}, Config{})
	k := importKey(t, e, rsa2048(t))
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, &rsa2048(t).PublicKey, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	m.Stall()
	ctx, cancel := context.WithCancel(context.Background())
	f := e.Decrypt(ctx, &offload.DecryptRequest{Key: k, Ciphertext: ct})
	cancel()
	if _, err := testwait.Wait(t, f, "abandoned decrypt"); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned: %v", err)
	}
	if e.asym.InFlight() != 1 {
		t.Errorf("%d in flight while the device holds the request", e.asym.InFlight())
	}
	m.Resume()
	testwait.Until(t, "the late completion", func() bool { return e.asym.InFlight() == 0 })
	if v, err := f.Poll(); v != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("after the late completion: %q, %v", v, err)
	}
}

// TestCloseInFlight: Close waits for what is on the device and delivers it.
func TestCloseInFlight(t *testing.T) {
	e, _ := open(t, ModelConfig{}, Config{})
	k := importKey(t, e, rsa2048(t))
	fs := make([]*offload.Future[[]byte], 32)
	for i := range fs {
		fs[i] = e.Sign(context.Background(), signReq(k))
	}
	e.Close()
	for _, f := range fs {
		sig, err := testwait.Wait(t, f, "sign across Close")
		if err == nil {
			err = rsa.VerifyPKCS1v15(&rsa2048(t).PublicKey, crypto.SHA256, digest[:], sig)
		}
		if err != nil && !errors.Is(err, offload.ErrClosed) {
			t.Errorf("across Close: %v", err)
		}
	}
	if _, err := testwait.Wait(t, e.Sign(context.Background(), signReq(k)), "sign after Close"); !errors.Is(err, offload.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestPollerParks: with nothing outstanding the pollers do not poll: the
// count of polls stops growing.
func TestPollerParks(t *testing.T) {
	e, m := open(t, ModelConfig{NoLatency: true}, Config{})
	k := importKey(t, e, make([]byte, 16))
	for range 8 {
		f := e.Cipher(context.Background(), &offload.CipherRequest{Key: k, Mode: offload.ModeGCM, IV: make([]byte, 12), Input: []byte("x")})
		if _, err := testwait.Wait(t, f, "seal"); err != nil {
			t.Fatal(err)
		}
	}
	if e.Polls() == 0 {
		t.Fatal("no polls while requests were outstanding")
	}
	// Every poller sees nothing outstanding and parks: the count settles.
	testwait.Until(t, "every poller parked", func() bool {
		for _, in := range e.insts {
			if in.p.outstanding.Load() != 0 {
				return false
			}
		}
		return true
	})
	before := e.Polls()
	// Give the pollers fifty poll intervals in which to poll if they
	// would: one that did not park would poll about that many times, a
	// parked one is blocked on its wake channel and never polls again.
	// (This bounds nothing in time; the check is on the count.)
	time.Sleep(50 * DefaultPollInterval)
	if after := e.Polls(); after > before+uint64(len(e.insts)) {
		t.Errorf("idle pollers polled %d times", after-before)
	}
	if m.Polls() != e.Polls() {
		t.Errorf("model counted %d polls, engine %d", m.Polls(), e.Polls())
	}
}

// TestImportCopiesKey: the engine keeps its own copy of an ECDSA scalar
// (the caller's Bytes may be the key's cached scalar itself), so clearing
// the caller's leaves the engine's key signing.
func TestImportCopiesKey(t *testing.T) {
	e, err := Open(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := e.ImportKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := priv.Bytes()
	clear(d)
	digest := sha256.Sum256([]byte("engine's copy"))
	sig, err := e.Sign(context.Background(), &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}).Wait(context.Background())
	if err != nil || !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig) {
		t.Fatalf("the engine's key shares the caller's scalar: %v", err)
	}
}
