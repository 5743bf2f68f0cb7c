package compose_test

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/compose"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// pairEngines composes a modelled card and a software engine, closed when
// t ends.
func pairEngines(t *testing.T, o compose.Options) (offload.Engine, *qat.Engine, *qat.Model, *soft.Engine) {
	t.Helper()
	m, err := qat.NewModel(qat.ModelConfig{NoLatency: true})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := qat.Open(context.Background(), qat.Config{Model: m})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := soft.New(soft.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := compose.New(dev, sw, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Resume()
		m.Restarted()
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
	})
	return eng, dev, m, sw
}

func importKey(t *testing.T, eng offload.Engine, priv any) *offload.Key {
	t.Helper()
	k, err := eng.(offload.Importer).ImportKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var digest = sha256.Sum256([]byte("composed"))

func signReq(k *offload.Key) *offload.SignRequest {
	return &offload.SignRequest{Key: k, Digest: digest[:], Opts: crypto.SHA256}
}

// TestRoutes: where each request goes, as Record reports it and as the
// two engines' own counters show.
func TestRoutes(t *testing.T) {
	eng, dev, _, sw := pairEngines(t, compose.Options{})
	aesKey := make([]byte, 16)
	rand.Read(aesKey)
	ak := importKey(t, eng, aesKey)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek := importKey(t, eng, ec)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edk := importKey(t, eng, edPriv) // the card has no Ed25519: the second's alone
	devKey, err := dev.ImportKey(aesKey)
	if err != nil {
		t.Fatal(err)
	}
	gcm := func(k *offload.Key, n, aad int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := eng.Cipher(ctx, &offload.CipherRequest{Key: k, Mode: offload.ModeGCM,
				IV: make([]byte, 12), AAD: make([]byte, aad), Input: make([]byte, n)}).Wait(ctx)
			return err
		}
	}
	for _, tc := range []struct {
		name     string
		do       func(ctx context.Context) error
		op       offload.Op
		want     offload.Engine
		why      compose.Reason
		firstErr error
	}{
		{"64-byte GCM", gcm(ak, 64, 0), offload.OpCipher, sw, compose.Small, nil},
		{"GCM one byte under", gcm(ak, compose.DefaultThreshold-1, 0), offload.OpCipher, sw, compose.Small, nil},
		{"GCM at the threshold", gcm(ak, compose.DefaultThreshold, 0), offload.OpCipher, dev, compose.First, nil},
		{"16 KiB GCM", gcm(ak, 16<<10, 13), offload.OpCipher, dev, compose.First, nil},
		{"GCM with more AAD than the card takes", gcm(ak, 16<<10, qat.MaxAAD+1), offload.OpCipher, sw, compose.Unsupported, offload.ErrUnsupported},
		{"small GCM on the card's own key", gcm(devKey, 64, 0), offload.OpCipher, dev, compose.First, nil},
		{"ECDSA", func(ctx context.Context) error {
			sig, err := eng.Sign(ctx, signReq(ek)).Wait(ctx)
			if err == nil && !ecdsa.VerifyASN1(&ec.PublicKey, digest[:], sig) {
				err = errors.New("signature does not verify")
			}
			return err
		}, offload.OpSign, dev, compose.First, nil},
		{"Ed25519, the second's alone", func(ctx context.Context) error {
			_, err := eng.Sign(ctx, &offload.SignRequest{Key: edk, Message: []byte("m")}).Wait(ctx)
			return err
		}, offload.OpSign, sw, compose.SecondOnly, nil},
		{"stateless hash of 4 KiB", func(ctx context.Context) error {
			_, err := eng.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Data: make([]byte, 4096), Final: true}).Wait(ctx)
			return err
		}, offload.OpHash, sw, compose.Unsupported, offload.ErrUnsupported},
		{"random", func(ctx context.Context) error {
			_, err := eng.Random(ctx, &offload.RandomRequest{N: 32}).Wait(ctx)
			return err
		}, offload.OpRandom, sw, compose.Unsupported, offload.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devBefore, swBefore := dev.Stats().Op(tc.op).Submitted, sw.Stats().Op(tc.op).Submitted
			var r compose.Route
			if err := tc.do(compose.Record(context.Background(), &r)); err != nil {
				t.Fatal(err)
			}
			if r.Engine != tc.want || r.Reason != tc.why {
				t.Errorf("went to %v (%v), want %v (%v)", r.Engine.Info().Name, r.Reason, tc.want.Info().Name, tc.why)
			}
			if tc.firstErr == nil && r.FirstErr != nil || tc.firstErr != nil && !errors.Is(r.FirstErr, tc.firstErr) {
				t.Errorf("FirstErr = %v, want %v", r.FirstErr, tc.firstErr)
			}
			devN, swN := dev.Stats().Op(tc.op).Submitted-devBefore, sw.Stats().Op(tc.op).Submitted-swBefore
			if got := map[offload.Engine]uint64{dev: devN, sw: swN}; got[tc.want] != 1 {
				t.Errorf("the card took %d, software %d", devN, swN)
			}
		})
	}
	if s := eng.Stats().Op(offload.OpCipher); s.Completed != 6 || s.Fallbacks != 0 {
		t.Errorf("composed cipher stats: %+v", s)
	}
}

// TestFallback: a request the card fails with a device error goes to the
// software engine only when Fallback is set, is counted, and is reported
// to a caller who asks; refused at submission (a resetting card) or failed
// on the card (reset with the request in flight) alike.
func TestFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool
		inFlight bool // reset while the request is on the card
	}{
		{"refused, no fallback", false, false},
		{"refused, fallback", true, false},
		{"in flight, no fallback", false, true},
		{"in flight, fallback", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, _, m, sw := pairEngines(t, compose.Options{Fallback: tc.fallback})
			ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			k := importKey(t, eng, ec)
			var r compose.Route
			ctx := compose.Record(context.Background(), &r)
			var f *offload.Future[[]byte]
			if tc.inFlight {
				m.Stall()
				f = eng.Sign(ctx, signReq(k))
				m.Reset()
				m.Resume()
			} else {
				m.Reset()
				f = eng.Sign(ctx, signReq(k))
			}
			sig, err := testwait.Wait(t, f, "sign across a reset")
			fallbacks := eng.Stats().Op(offload.OpSign).Fallbacks
			if !tc.fallback {
				if !errors.Is(err, offload.ErrUnavailable) || !errors.Is(err, qat.StatusRestarting) {
					t.Errorf("without fallback: %v, want the card's StatusRestarting", err)
				}
				if fallbacks != 0 || sw.Stats().Op(offload.OpSign).Submitted != 0 {
					t.Errorf("without fallback the software engine signed (%d fallbacks counted)", fallbacks)
				}
				return
			}
			if err != nil || !ecdsa.VerifyASN1(&ec.PublicKey, digest[:], sig) {
				t.Fatalf("fallback: %v", err)
			}
			if r.Engine != offload.Engine(sw) || r.Reason != compose.Fallback || !errors.Is(r.FirstErr, qat.StatusRestarting) {
				t.Errorf("route %+v, want a fallback to software after StatusRestarting", r)
			}
			if fallbacks != 1 {
				t.Errorf("%d fallbacks counted, want 1", fallbacks)
			}
		})
	}
}

// TestNoFallbackAfterCancel: a request whose context ended is not sent
// again, whatever the card answers later.
func TestNoFallbackAfterCancel(t *testing.T) {
	eng, dev, m, sw := pairEngines(t, compose.Options{Fallback: true})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := importKey(t, eng, ec)
	m.Stall()
	ctx, cancel := context.WithCancel(context.Background())
	f := eng.Sign(ctx, signReq(k))
	cancel()
	if _, err := testwait.Wait(t, f, "cancelled sign"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	m.Reset()
	m.Resume()
	testwait.Until(t, "the card to finish the abandoned request", func() bool {
		return dev.Stats().Op(offload.OpSign).InFlight == 0
	})
	if n := sw.Stats().Op(offload.OpSign).Submitted; n != 0 {
		t.Errorf("the software engine signed %d abandoned requests", n)
	}
	if s := eng.Stats().Op(offload.OpSign); s.Fallbacks != 0 || s.Failed != 1 {
		t.Errorf("stats: %+v", s)
	}
}

// TestKeys: which engines hold a key made through the composed engine, and
// Pair's checks.
func TestKeys(t *testing.T) {
	ctx := context.Background()
	eng, dev, _, sw := pairEngines(t, compose.Options{})
	gen := eng.(offload.Generator)
	k, err := gen.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r compose.Route
	if _, err := eng.Sign(compose.Record(ctx, &r), signReq(k)).Wait(ctx); err != nil || r.Engine != offload.Engine(dev) {
		t.Errorf("a generated P-256 key signs on %v: %v", r.Engine, err)
	}
	k, err = gen.GenerateKey(ctx, offload.KeyEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Sign(compose.Record(ctx, &r), &offload.SignRequest{Key: k, Message: []byte("m")}).Wait(ctx); err != nil || r.Reason != compose.SecondOnly {
		t.Errorf("a generated Ed25519 key signs on %v (%v): %v", r.Engine, r.Reason, err)
	}

	a, b := make([]byte, 32), make([]byte, 32)
	rand.Read(a)
	rand.Read(b)
	e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	imp := func(e interface {
		ImportKey(any) (*offload.Key, error)
	}, priv any) *offload.Key {
		k, err := e.ImportKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	other, err := soft.New(soft.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, tc := range []struct {
		name          string
		first, second *offload.Key
		want          error
	}{
		{"one AES key", imp(dev, a), imp(sw, a), nil},
		{"two AES keys", imp(dev, a), imp(sw, b), offload.ErrInvalid},
		{"one ECDSA key", imp(dev, e1), imp(sw, e1), nil},
		{"two ECDSA keys", imp(dev, e1), imp(sw, e2), offload.ErrInvalid},
		{"AES and ECDSA", imp(dev, a), imp(sw, e1), offload.ErrInvalid},
		{"halves swapped", imp(sw, a), imp(dev, a), offload.ErrForeignKey},
		{"another engine's key", imp(dev, a), imp(other, a), offload.ErrForeignKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := compose.Pair(ctx, eng, tc.first, tc.second)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("Pair: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if k.Engine() != eng {
				t.Errorf("the pair belongs to %v", k.Engine().Info().Name)
			}
		})
	}

	// A paired AES key seals like crypto/cipher on both sides of the
	// threshold.
	pk, err := compose.Pair(ctx, eng, imp(dev, a), imp(sw, a))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := aes.NewCipher(a)
	want, _ := cipher.NewGCM(blk)
	for _, n := range []int{64, 8192} {
		in := make([]byte, n)
		rand.Read(in)
		out, err := eng.Cipher(ctx, &offload.CipherRequest{Key: pk, Mode: offload.ModeGCM, IV: make([]byte, 12), Input: in}).Wait(ctx)
		if err != nil || string(out) != string(want.Seal(nil, make([]byte, 12), in, nil)) {
			t.Errorf("%d bytes through the pair: %v", n, err)
		}
	}
}

// bare hides an engine's optional interfaces.
type bare struct{ offload.Engine }

// TestInterfaces: the composed engine offers an optional interface only
// when it can honour it.
func TestInterfaces(t *testing.T) {
	for _, tc := range []struct {
		name              string
		first, second     func(t *testing.T) offload.Engine
		im, gen, sessions bool
	}{
		{"card and software", openQAT, openSoft, true, true, true},
		{"software and card", openSoft, openQAT, true, true, false},
		{"two bare engines", bareOf(openSoft), bareOf(openSoft), false, false, false},
		{"bare card, software", bareOf(openQAT), openSoft, true, true, false},
		{"card, bare software", openQAT, bareOf(openSoft), true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := compose.New(tc.first(t), tc.second(t), compose.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			_, im := eng.(offload.Importer)
			_, gen := eng.(offload.Generator)
			_, hs := eng.(offload.HashSessioner)
			if im != tc.im || gen != tc.gen || hs != tc.sessions {
				t.Errorf("Importer %v, Generator %v, HashSessioner %v; want %v, %v, %v", im, gen, hs, tc.im, tc.gen, tc.sessions)
			}
			if a, b := compose.Engines(eng); a == nil || b == nil {
				t.Error("Engines does not see through the composed engine")
			}
		})
	}
	if a, b := compose.Engines(bare{}); a != nil || b != nil {
		t.Error("Engines of an engine that is not composed")
	}
}

func bareOf(open func(t *testing.T) offload.Engine) func(t *testing.T) offload.Engine {
	return func(t *testing.T) offload.Engine { return bare{open(t)} }
}

// TestBadInput: what New refuses, and requests the composed engine fails
// before either engine sees them.
func TestBadInput(t *testing.T) {
	a, b := openSoft(t), openSoft(t)
	defer a.Close()
	defer b.Close()
	for _, tc := range []struct {
		name          string
		first, second offload.Engine
		o             compose.Options
		want          string
	}{
		{"nil first", nil, b, compose.Options{}, "nil engine"},
		{"nil second", a, nil, compose.Options{}, "nil engine"},
		{"one engine twice", a, a, compose.Options{}, "one engine given twice"},
		{"negative threshold", a, b, compose.Options{Threshold: -1}, "Options.Threshold is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := compose.New(tc.first, tc.second, tc.o)
			if !errors.Is(err, offload.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || eng != nil {
				t.Errorf("New: %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}

	eng, _, _, _ := pairEngines(t, compose.Options{})
	ctx := context.Background()
	k := importKey(t, eng, make([]byte, 16))
	foreign, err := a.(offload.Importer).ImportKey(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	gcm := func(k *offload.Key) *offload.CipherRequest {
		return &offload.CipherRequest{Key: k, Mode: offload.ModeGCM, IV: make([]byte, 12), Input: make([]byte, 64)}
	}
	for _, tc := range []struct {
		name string
		f    *offload.Future[[]byte]
		want error
	}{
		{"foreign key", eng.Cipher(ctx, gcm(foreign)), offload.ErrForeignKey},
		{"nil key", eng.Sign(ctx, &offload.SignRequest{Digest: digest[:], Opts: crypto.SHA256}), offload.ErrInvalid},
		{"nil request", eng.Decrypt(ctx, nil), offload.ErrInvalid},
		{"negative random", eng.Random(ctx, &offload.RandomRequest{N: -1}), offload.ErrInvalid},
	} {
		if _, err := tc.f.Poll(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Cipher(ctx, gcm(k)).Poll(); !errors.Is(err, offload.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := eng.(offload.Importer).ImportKey(make([]byte, 16)); !errors.Is(err, offload.ErrClosed) {
		t.Errorf("import after Close: %v", err)
	}
	if err := eng.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
