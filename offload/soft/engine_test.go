package soft

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"

	"github.com/offcrypt/offcrypt/internal/fault"
	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/offload"
)

func TestNewOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
		ok   bool
		msg  string // how the error begins
	}{
		{"zero", Options{}, true, ""},
		{"min-inline", Options{MaxInline: MinMaxInline}, true, ""},
		{"small-inline", Options{MaxInline: 64}, false, "soft: Options.MaxInline is 64, below 128"},
		{"negative-workers", Options{Workers: -1}, false, "soft: Options.Workers is -1: "},
		{"negative-in-flight", Options{MaxInFlight: -1}, false, "soft: Options.MaxInFlight is -1: "},
		{"huge-in-flight", Options{MaxInFlight: 1 << 40}, false, "soft: Options.MaxInFlight is 1099511627776: offload: invalid input: at most 1048576"},
		{"max-int-in-flight", Options{MaxInFlight: math.MaxInt}, false, "soft: Options.MaxInFlight is 9223372036854775807: "},
		{"huge-workers", Options{Workers: 1 << 40}, false, "soft: Options.Workers is 1099511627776: "},
		{"negative-inline", Options{MaxInline: -1}, false, "soft: Options.MaxInline is -1: "},
		{"negative-latency", Options{Latency: -time.Second}, false, "soft: Options.Latency is -1s: "},
		{"negative-jitter", Options{Jitter: -1}, false, "soft: Options.Jitter is -1ns: "},
		{"negative-not-ready", Options{NotReady: -1}, false, "soft: Options.NotReady is -1: "},
		{"empty-fault", Options{Faults: []fault.Fault{{Every: 2}}}, false, "soft: Options.Faults[0] has neither Err nor Drop"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(tt.o)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				info := e.Info()
				if info.Name != "soft" || info.MaxInFlight != DefaultMaxInFlight || info.MinRSABits != 2048 || info.MaxRSABits != 8192 {
					t.Fatalf("info %+v", info)
				}
				if len(info.Algorithms) != int(offload.Random) {
					t.Fatalf("%d algorithms listed", len(info.Algorithms))
				}
				for a := offload.ECDSAP256; a <= offload.Random; a++ {
					if !info.Supports(a) {
						t.Fatalf("%v not supported", a)
					}
				}
				return
			}
			if !errors.Is(err, offload.ErrInvalid) || !strings.HasPrefix(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want ErrInvalid and a message that begins %q", err, tt.msg)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	e := newEngine(t, Options{MaxInline: 1024})
	other := newEngine(t, Options{})
	ctx := context.Background()

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecKey := mustImport(t, e, p256)
	foreign := mustImport(t, other, p256)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edKey := mustImport(t, e, edPriv)
	_, ed448Priv, _ := ed448.GenerateKey(rand.Reader)
	ed448Key := mustImport(t, e, ed448Priv)
	_, mlPriv, _ := mldsa44.GenerateKey(rand.Reader)
	mlKey := mustImport(t, e, mlPriv)
	rsaKey := mustImport(t, e, testRSA(t))
	aesKey, _ := e.GenerateKey(ctx, offload.KeyAES, 0)
	forged := offload.NewKey(e, offload.KeyECDSAP256, 256, nil, "not a handle")
	d := sha256.Sum256([]byte("x"))
	long := make([]byte, 300)

	sign := func(r *offload.SignRequest) func() error {
		return func() error { _, err := wait(t, e.Sign(ctx, r)); return err }
	}
	hash := func(r *offload.HashRequest) func() error {
		return func() error { _, err := wait(t, e.Hash(ctx, r)); return err }
	}
	ciph := func(r *offload.CipherRequest) func() error {
		return func() error { _, err := wait(t, e.Cipher(ctx, r)); return err }
	}
	imp := func(priv any) func() error {
		return func() error { _, err := e.ImportKey(priv); return err }
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		do   func() error
		want error
		op   bool // the error comes from a future: an *offload.OpError
	}{
		{"wrong-digest-length", sign(&offload.SignRequest{Key: ecKey, Digest: d[:20], Opts: crypto.SHA256}), offload.ErrInvalid, true},
		{"PSS-opts-on-ECDSA", sign(&offload.SignRequest{Key: ecKey, Digest: d[:], Opts: &rsa.PSSOptions{Hash: crypto.SHA256}}), offload.ErrInvalid, true},
		{"ECDSA-without-hash", sign(&offload.SignRequest{Key: ecKey, Digest: d[:]}), offload.ErrInvalid, true},
		{"PSS-bad-salt", sign(&offload.SignRequest{Key: rsaKey, Digest: d[:], Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: -7}}), offload.ErrInvalid, true},
		{"RSA-raw-too-long", sign(&offload.SignRequest{Key: rsaKey, Digest: long}), offload.ErrInvalid, true},
		{"foreign-key", sign(&offload.SignRequest{Key: foreign, Digest: d[:], Opts: crypto.SHA256}), offload.ErrForeignKey, true},
		{"forged-handle", sign(&offload.SignRequest{Key: forged, Digest: d[:], Opts: crypto.SHA256}), offload.ErrInvalid, true},
		{"nil-key", sign(&offload.SignRequest{Digest: d[:], Opts: crypto.SHA256}), offload.ErrInvalid, true},
		{"message-over-cap", sign(&offload.SignRequest{Key: edKey, Message: make([]byte, 1025)}), offload.ErrInvalid, true},
		{"Ed25519-SHA256", sign(&offload.SignRequest{Key: edKey, Digest: d[:], Opts: crypto.SHA256}), offload.ErrInvalid, true},
		{"Ed25519-long-context", sign(&offload.SignRequest{Key: edKey, Message: d[:], Opts: &ed25519.Options{Context: string(long)}}), offload.ErrInvalid, true},
		{"Ed448-long-context", sign(&offload.SignRequest{Key: ed448Key, Message: d[:], Opts: ed448.SignerOptions{Context: string(long)}}), offload.ErrInvalid, true},
		{"Ed448-bad-scheme", sign(&offload.SignRequest{Key: ed448Key, Message: d[:], Opts: ed448.SignerOptions{Scheme: 9}}), offload.ErrInvalid, true},
		{"ML-DSA-long-context", sign(&offload.SignRequest{Key: mlKey, Message: d[:], Opts: &offload.MLDSAOptions{Context: long}}), offload.ErrInvalid, true},
		{"AES-key-signs", sign(&offload.SignRequest{Key: aesKey, Message: d[:]}), offload.ErrInvalid, true},
		{"ECDSA-decrypts", func() error {
			_, err := wait(t, e.Decrypt(ctx, &offload.DecryptRequest{Key: ecKey, Ciphertext: long}))
			return err
		}, offload.ErrInvalid, true},
		{"ciphertext-over-cap", func() error {
			_, err := wait(t, e.Decrypt(ctx, &offload.DecryptRequest{Key: rsaKey, Ciphertext: make([]byte, 2000)}))
			return err
		}, offload.ErrInvalid, true},
		{"random-over-cap", func() error { _, err := wait(t, e.Random(ctx, &offload.RandomRequest{N: 1025})); return err }, offload.ErrInvalid, true},
		{"random-negative", func() error { _, err := wait(t, e.Random(ctx, &offload.RandomRequest{N: -1})); return err }, offload.ErrInvalid, true},
		{"hash-non-block", hash(&offload.HashRequest{Hash: crypto.SHA256, Data: make([]byte, 65)}), offload.ErrInvalid, true},
		{"hash-SHA512-non-block", hash(&offload.HashRequest{Hash: crypto.SHA512, Data: make([]byte, 64)}), offload.ErrInvalid, true},
		{"hash-over-cap", hash(&offload.HashRequest{Hash: crypto.SHA256, Data: make([]byte, 1088), Final: true}), offload.ErrInvalid, true},
		{"hash-bad-state", hash(&offload.HashRequest{Hash: crypto.SHA256, State: []byte("garbage"), Final: true}), offload.ErrInvalid, true},
		{"hash-empty-state", hash(&offload.HashRequest{Hash: crypto.SHA256, State: []byte{}, Final: true}), offload.ErrInvalid, true},
		{"hash-wrong-kind-state", func() error {
			r, err := wait(t, e.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Data: make([]byte, 64)}))
			if err != nil {
				return err
			}
			_, err = wait(t, e.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA224, State: r.State, Final: true}))
			return err
		}, offload.ErrInvalid, true},
		{"hash-MD5", hash(&offload.HashRequest{Hash: crypto.MD5, Final: true}), offload.ErrUnsupported, true},
		{"CBC-non-block", ciph(&offload.CipherRequest{Key: aesKey, Mode: offload.ModeCBC, IV: make([]byte, 16), Input: make([]byte, 17)}), offload.ErrInvalid, true},
		{"CBC-short-IV", ciph(&offload.CipherRequest{Key: aesKey, Mode: offload.ModeCBC, IV: make([]byte, 8), Input: make([]byte, 16)}), offload.ErrInvalid, true},
		{"CTR-long-IV", ciph(&offload.CipherRequest{Key: aesKey, Mode: offload.ModeCTR, IV: make([]byte, 17), Input: make([]byte, 16)}), offload.ErrInvalid, true},
		{"GCM-no-nonce", ciph(&offload.CipherRequest{Key: aesKey, Mode: offload.ModeGCM, Input: make([]byte, 16)}), offload.ErrInvalid, true},
		{"cipher-over-cap", ciph(&offload.CipherRequest{Key: aesKey, Mode: offload.ModeCTR, IV: make([]byte, 16), Input: make([]byte, 1025)}), offload.ErrInvalid, true},
		{"cipher-bad-mode", ciph(&offload.CipherRequest{Key: aesKey, Mode: 9, IV: make([]byte, 16)}), offload.ErrUnsupported, true},
		{"cipher-with-ECDSA-key", ciph(&offload.CipherRequest{Key: ecKey, Mode: offload.ModeCTR, IV: make([]byte, 16)}), offload.ErrInvalid, true},
		{"import-string", imp("a key"), offload.ErrUnsupported, false},
		{"import-P224", imp(p224), offload.ErrUnsupported, false},
		{"import-RSA-1024", imp(rsa1024), offload.ErrUnsupported, false},
		{"import-AES-20", imp(make([]byte, 20)), offload.ErrInvalid, false},
		{"import-Ed25519-short", imp(ed25519.PrivateKey(make([]byte, 10))), offload.ErrInvalid, false},
		{"import-nil-ECDSA", imp((*ecdsa.PrivateKey)(nil)), offload.ErrInvalid, false},
		{"import-nil-RSA", imp((*rsa.PrivateKey)(nil)), offload.ErrInvalid, false},
		{"generate-RSA-1024", func() error { _, err := e.GenerateKey(ctx, offload.KeyRSA, 1024); return err }, offload.ErrUnsupported, false},
		{"generate-AES-100", func() error { _, err := e.GenerateKey(ctx, offload.KeyAES, 100); return err }, offload.ErrInvalid, false},
		{"generate-unknown", func() error { _, err := e.GenerateKey(ctx, 99, 0); return err }, offload.ErrUnsupported, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var oe *offload.OpError
			if tt.op && (!errors.As(err, &oe) || oe.Engine != "soft") {
				t.Fatalf("err = %#v, want an *offload.OpError from soft", err)
			}
		})
	}
}

func TestClosedAndCancelled(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := e.GenerateKey(context.Background(), offload.KeyEd25519, 0)

	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, inline := range []bool{false, true} {
		_, err = wait(t, e.Sign(cctx, &offload.SignRequest{Call: offload.Call{Inline: inline}, Key: key, Message: []byte("m")}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled context: err = %v", err)
		}
	}

	e.Close()
	e.Close() // twice is fine
	ctx := context.Background()
	for name, do := range map[string]func() error{
		"sign": func() error {
			_, err := wait(t, e.Sign(ctx, &offload.SignRequest{Key: key, Message: []byte("m")}))
			return err
		},
		"hash": func() error {
			_, err := wait(t, e.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Final: true}))
			return err
		},
		"random": func() error { _, err := wait(t, e.Random(ctx, &offload.RandomRequest{N: 8})); return err },
		"import": func() error { _, err := e.ImportKey(make([]byte, 16)); return err },
		"generate": func() error {
			_, err := e.GenerateKey(ctx, offload.KeyAES, 0)
			return err
		},
	} {
		if err := do(); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func TestBusy(t *testing.T) {
	e := newEngine(t, Options{MaxInFlight: 2, Latency: time.Hour})
	ctx := context.Background()
	held := []*offload.Future[[]byte]{
		e.Random(ctx, &offload.RandomRequest{N: 8}),
		e.Random(ctx, &offload.RandomRequest{N: 8, Call: offload.Call{Inline: true}}),
	}
	for _, inline := range []bool{false, true} {
		_, err := wait(t, e.Random(ctx, &offload.RandomRequest{N: 8, Call: offload.Call{NoWait: true, Inline: inline}}))
		if !errors.Is(err, offload.ErrBusy) {
			t.Fatalf("NoWait on a full engine: err = %v, want ErrBusy", err)
		}
	}
	// A waiting admission gives up with its context.
	tctx, cancel := context.WithCancel(ctx)
	go cancel()
	if _, err := wait(t, e.Random(tctx, &offload.RandomRequest{N: 8})); !errors.Is(err, context.Canceled) {
		t.Fatalf("admission with a cancelled context: err = %v", err)
	}
	for _, f := range held {
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Fatalf("held request resolved early: %v", err)
		}
	}
	e.Close()
	for _, f := range held {
		if _, err := wait(t, f); !errors.Is(err, offload.ErrClosed) {
			t.Fatalf("held request after Close: err = %v, want ErrClosed", err)
		}
	}
}

func TestInjectLatency(t *testing.T) {
	e := newEngine(t, Options{Latency: time.Hour})
	key, _ := e.GenerateKey(context.Background(), offload.KeyEd25519, 0)
	for _, inline := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		f := e.Sign(ctx, &offload.SignRequest{Call: offload.Call{Inline: inline}, Key: key, Message: []byte("m")})
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Fatalf("inline=%v: Poll = %v, want ErrNotReady", inline, err)
		}
		cancel()
		if _, err := wait(t, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("inline=%v: cancelled: err = %v", inline, err)
		}
	}

	// Short latency and jitter still deliver right results.
	e2 := newEngine(t, Options{Latency: time.Millisecond, Jitter: time.Millisecond})
	k2, _ := e2.ImportKey(key.Handle().(edKey).priv)
	for _, inline := range []bool{false, true} {
		sig, err := wait(t, e2.Sign(context.Background(), &offload.SignRequest{Call: offload.Call{Inline: inline}, Key: k2, Message: []byte("m")}))
		if err != nil || !ed25519.Verify(k2.Public().(ed25519.PublicKey), []byte("m"), sig) {
			t.Fatalf("inline=%v: %v", inline, err)
		}
	}
}

func TestInjectNotReady(t *testing.T) {
	e := newEngine(t, Options{Workers: 1, NotReady: 100000})
	for _, inline := range []bool{false, true} {
		f := e.Random(context.Background(), &offload.RandomRequest{N: 16, Call: offload.Call{Inline: inline}})
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Fatalf("inline=%v: Poll right after submit = %v, want ErrNotReady", inline, err)
		}
		if b, err := wait(t, f); err != nil || len(b) != 16 {
			t.Fatalf("inline=%v: %d bytes, %v", inline, len(b), err)
		}
	}
}

var errInjected = errors.New("injected failure")

func TestInjectFaults(t *testing.T) {
	e := newEngine(t, Options{Faults: []fault.Fault{
		{If: func(r fault.Request) bool { return r.Op == offload.OpHash }, Drop: true},
		{If: func(r fault.Request) bool { return r.Op == offload.OpRandom }, Every: 2, Err: errInjected},
	}})
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		_, err := wait(t, e.Random(ctx, &offload.RandomRequest{N: 4, Call: offload.Call{Inline: i > 3}}))
		var oe *offload.OpError
		switch {
		case i%2 == 0 && (!errors.Is(err, errInjected) || !errors.As(err, &oe) || oe.Op != offload.OpRandom):
			t.Fatalf("request %d: err = %v, want the injected error in an OpError", i, err)
		case i%2 == 1 && err != nil:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// A dropped request resolves only when its context ends, or at Close.
	for _, inline := range []bool{false, true} {
		dctx, cancel := context.WithCancel(ctx)
		f := e.Hash(dctx, &offload.HashRequest{Call: offload.Call{Inline: inline}, Hash: crypto.SHA256, Final: true})
		if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
			t.Fatalf("dropped request: Poll = %v", err)
		}
		cancel()
		if _, err := wait(t, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("dropped request: err = %v, want context.Canceled", err)
		}
	}
	f := e.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Final: true})
	e.Close()
	if _, err := wait(t, f); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("dropped request at Close: err = %v, want ErrClosed", err)
	}
}

func TestCloseInFlight(t *testing.T) {
	leaks := leakcheck.Check(t)
	e, err := New(Options{Workers: 2, MaxInFlight: 64})
	if err != nil {
		t.Fatal(err)
	}
	priv := testRSA(t)
	key := mustImport(t, e, priv)
	slow, err := New(Options{Workers: 2, Latency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("close"))
	var fs, slowFs []*offload.Future[[]byte]
	for range 40 {
		fs = append(fs, e.Sign(context.Background(), &offload.SignRequest{Key: key, Digest: d[:], Opts: crypto.SHA256}))
		slowFs = append(slowFs, slow.Random(context.Background(), &offload.RandomRequest{N: 8}))
	}
	wait(t, fs[0]) // some work has run; the rest is queued or running
	e.Close()
	slow.Close()
	var ok, closed int
	for _, f := range fs {
		sig, err := wait(t, f)
		switch {
		case err == nil:
			if rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, d[:], sig) != nil {
				t.Fatal("signature delivered during Close does not verify")
			}
			ok++
		case errors.Is(err, offload.ErrClosed):
			closed++
		default:
			t.Fatalf("err = %v", err)
		}
	}
	for _, f := range slowFs {
		if _, err := wait(t, f); !errors.Is(err, offload.ErrClosed) {
			t.Fatalf("delayed request at Close: err = %v", err)
		}
	}
	t.Logf("%d signed, %d failed by Close", ok, closed)
	for _, s := range []offload.Snapshot{e.Stats(), slow.Stats()} {
		for _, o := range s.Ops {
			if o.InFlight != 0 || o.Submitted != o.Completed+o.Failed {
				t.Fatalf("after Close: %+v", o)
			}
		}
	}
	leaks()
}

func TestStats(t *testing.T) {
	e := newEngine(t, Options{Faults: []fault.Fault{
		{If: func(r fault.Request) bool { return r.Seq == 3 || r.Seq == 7 }, Err: errInjected},
	}})
	key, _ := e.GenerateKey(context.Background(), offload.KeyEd25519, 0)
	for i := range 10 {
		e.Sign(context.Background(), &offload.SignRequest{Call: offload.Call{Inline: i%2 == 0}, Key: key, Message: []byte("m")})
	}
	// Refused before admission: not counted.
	e.Sign(context.Background(), &offload.SignRequest{Message: []byte("m")})
	wait(t, e.Hash(context.Background(), &offload.HashRequest{Hash: crypto.SHA256, Final: true, Call: offload.Call{Inline: true}}))

	var s offload.OpStats
	for range 1000 {
		if s = e.Stats().Op(offload.OpSign); s.InFlight == 0 && s.Completed+s.Failed == 10 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s.Submitted != 10 || s.Completed != 8 || s.Failed != 2 || s.InFlight != 0 || s.MaxInFlight < 1 {
		t.Fatalf("sign stats %+v", s)
	}
	if h := e.Stats().Op(offload.OpHash); h.Submitted != 1 || h.Completed != 1 {
		t.Fatalf("hash stats %+v", h)
	}
	if d := e.Stats().Op(offload.OpDecrypt); d.Submitted != 0 {
		t.Fatalf("decrypt stats %+v", d)
	}
}

// TestSignConcurrent signs from many goroutines at once, inline and on
// workers, some requests cancelled, and checks every delivered signature.
func TestSignConcurrent(t *testing.T) {
	e := newEngine(t, Options{Workers: 2, MaxInFlight: 8})
	key, _ := e.GenerateKey(context.Background(), offload.KeyEd25519, 0)
	pub := key.Public().(ed25519.PublicKey)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 60 {
				msg := []byte{byte(g), byte(i), 'm'}
				ctx, cancel := context.WithCancel(context.Background())
				f := e.Sign(ctx, &offload.SignRequest{Call: offload.Call{Inline: i%2 == 0}, Key: key, Message: msg})
				if i%5 == 0 {
					cancel()
				}
				sig, err := f.Wait(context.Background())
				cancel()
				switch {
				case err == nil && !ed25519.Verify(pub, msg, sig):
					errs <- errors.New("a signature does not verify")
					return
				case err != nil && !errors.Is(err, context.Canceled):
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportLeavesKey: importing an ECDSA key leaves the caller's memory
// as it was (the key's Bytes may be its own cached scalar, which a caller
// or another engine may hold, and which the engine must not clear), and
// the engine's copy signs on whatever the caller then does to that scalar.
func TestImportLeavesKey(t *testing.T) {
	e, err := New(Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := priv.Bytes()
	before := slices.Clone(held)
	key, err := e.ImportKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held, before) {
		t.Fatal("ImportKey cleared the scalar the caller holds")
	}
	clear(held)
	digest := sha256.Sum256([]byte("caller's key"))
	sig, err := e.Sign(context.Background(), &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}).Wait(context.Background())
	if err != nil || !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig) {
		t.Fatalf("the engine's key shares the caller's scalar: %v", err)
	}
}
