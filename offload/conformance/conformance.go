// Package conformance is the one test suite every offload.Engine passes. An
// engine's tests call Run with a Factory that makes a fresh engine:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) conformance.Setup {
//			eng, err := soft.New(soft.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return conformance.Setup{Engine: eng, Import: eng.ImportKey, Generate: eng.GenerateKey}
//		})
//	}
//
// # What it checks
//
// For every Algorithm the engine's Info claims, the operation is done and
// its result checked by the standard library or circl: ECDSA, RSA PKCS #1
// v1.5 and PSS (every salt mode), Ed25519 (pure, ph, ctx), Ed448, ML-DSA,
// OAEP and PKCS #1 v1.5 decryption, the four SHA-2 hashes with the state
// carried between requests, AES-GCM, CBC and CTR, and random bytes. Every
// Algorithm not claimed is checked to fail with offload.ErrUnsupported
// before the device: the engine's Stats show no submission for it.
// Deterministic signatures are compared with published vectors (Wycheproof
// RSA PKCS #1 v1.5 generation and ML-DSA-65 from seed, RFC 8032 for Ed25519
// and Ed448), decryption runs Wycheproof's valid and invalid ciphertexts,
// and RSA-PSS signs with every Wycheproof parameter set whose MGF hash is
// the message hash.
//
// Each claimed hash also streams: random messages up to a few hundred KiB,
// cut into requests of random whole-block sizes up to Info.MaxInline with
// the state carried from each result to the next request and the tail in
// the final one, must hash as crypto/sha256 and crypto/sha512 do (the seed
// is in every failure message); and a stream of a dozen requests, with a
// fault injected (through inject.Wrap) at each position in turn, must give
// the right digest when the caller retries the failed request from the
// state it held. Wycheproof's aes_gcm_test.json and aes_cbc_pkcs5_test.json
// run for the AES modes claimed, with keys from Setup.Import (skipped
// without it): valid vectors must match; invalid GCM vectors must fail to
// open with an error; invalid CBC vectors (bad padding) must decrypt to the
// raw bytes crypto/cipher gives, since CBC has no integrity and engines do
// no padding, and then fail the suite's own PKCS #5 check.
//
// An engine that keeps hash state on the device (an offload.HashSessioner,
// which serves no stateless HashRequest) hashes through HashSession instead:
// random messages cut into Updates of random sizes up to Info.MaxInline, on
// the engine itself even in the wrapped runs (so that the faults injected
// there do not end them), must hash as the standard library does; an Update after
// Final must fail, a closed session must leave the engine working, and an
// unclaimed hash must fail HashSession with offload.ErrUnsupported.
//
// Then the rules offload's docs fix where engines once differed: a Random
// of N = 0 is an empty, non-nil answer that reaches no device; a GCM
// ciphertext shorter than the tag fails as crypto/cipher's authentication
// failure, not ErrInvalid; a request with Call.Inline whose context ends
// while the work runs fails with the context's error; and a negative option
// is refused by the engine's constructor (Setup.Refuse) and by inject.Wrap,
// with an error wrapping offload.ErrInvalid that names it.
//
// Then behaviour: a context already ended, ended while queued and while
// running (many requests, random cancel times, every future resolved once,
// every delivered result valid), Close with work in flight, Poll, Wait from
// many goroutines, a Queue collecting in batches, ErrBusy when the Setup
// says how to fill the engine, and a goroutine-leak check around each
// engine's life.
//
// The whole suite then runs twice more around inject.Wrap: with 1 ms of
// latency and 1 ms of jitter, and with a fault on every 5th request, where
// each result either checks out or fails with the injected error.
//
// Keys come from the Setup: imported when Import is set (fresh keys, RSA ones
// generated once per process and shared), else generated, else taken from
// Keys. A claimed algorithm for which no key can be had fails the suite.
//
// Run closes every engine its Factory returns.
package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// A Factory makes a fresh engine for one part of the suite. It may call
// t.Fatal or t.Skip. Run calls it several times and closes every engine.
type Factory func(t *testing.T) Setup

// Setup is an engine under test and how to get keys for it.
type Setup struct {
	// Engine is the engine under test.
	Engine offload.Engine

	// Import takes in a private key held in memory (the standard library's
	// or circl's, or AES key bytes), as offload.Importer does; nil when the
	// engine cannot import. Keys that must be known (published vectors, AES
	// keys compared against crypto/cipher) need it.
	Import func(priv any) (*offload.Key, error)

	// Generate makes a new key, as offload.Generator does; nil when the
	// engine cannot.
	Generate func(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error)

	// Keys are ready keys for engines that can only look keys up, by type.
	// An RSA key here is used at whatever size it has.
	Keys map[offload.KeyType]*offload.Key

	// Saturate, if not nil, fills every in-flight slot of Engine until the
	// returned release is called, so the suite can check that a NoWait
	// request fails with offload.ErrBusy. Without it that check is skipped:
	// no generic way fills an engine (inject.Wrap's drops do not hold the
	// inner engine's slots).
	Saturate func(t *testing.T) (release func())

	// Refuse, if not nil, tries to make an engine of the same kind with each
	// of its numeric options set to -1 in turn (-1 ns for a duration), and
	// returns what the constructor answered, by the option's name as its
	// error must cite it ("Options.Workers", "Config.MaxInFlight"). It
	// closes any engine it did make. The suite checks that each answer is an
	// error wrapping offload.ErrInvalid that says "<name> is -1".
	Refuse func(t *testing.T) map[string]error
}

// errInjected is the fault the suite injects through inject.Wrap.
var errInjected = errors.New("conformance: injected fault")

// mode says how a run wraps the engine.
type mode struct {
	name   string
	opts   *inject.Options // nil: the engine as it is
	faults bool            // results may fail with errInjected
}

// Run runs the suite against the engines f makes.
func Run(t *testing.T, f Factory) {
	modes := []mode{
		{name: "plain"},
		{name: "latency", opts: &inject.Options{Latency: time.Millisecond, Jitter: time.Millisecond}},
		{name: "faults", opts: &inject.Options{Faults: []inject.Fault{{Every: 5, Err: errInjected}}}, faults: true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Run("algorithms", func(t *testing.T) {
				s := newSuite(t, f, m)
				s.algorithms(t)
			})
			t.Run("vectors", func(t *testing.T) {
				s := newSuite(t, f, m)
				s.vectors(t)
			})
			t.Run("rules", func(t *testing.T) {
				s := newSuite(t, f, m)
				s.rules(t)
			})
			t.Run("behaviour", func(t *testing.T) { behaviour(t, f, m) })
		})
	}
}

// suite is one engine under test, possibly wrapped.
type suite struct {
	Setup
	mode mode
	info offload.Info
	keys map[keyID]keyPair

	// sessions is the engine as an offload.HashSessioner, unwrapped (the
	// inject wrapper does not pass hash sessions on), or nil.
	sessions offload.HashSessioner
}

type keyID struct {
	t    offload.KeyType
	bits int
}

// keyPair is an engine key and, when the suite imported it, the private key
// it was made from.
type keyPair struct {
	key  *offload.Key
	priv any
}

// newSuite makes an engine with f, wraps it as m says, and closes it when t
// ends.
func newSuite(t *testing.T, f Factory, m mode) *suite {
	t.Helper()
	st := f(t)
	if st.Engine == nil {
		t.Fatal("conformance: Setup.Engine is nil")
	}
	sessions, _ := st.Engine.(offload.HashSessioner)
	if m.opts != nil {
		w, err := inject.Wrap(st.Engine, *m.opts)
		if err != nil {
			st.Engine.Close()
			t.Fatalf("conformance: wrapping the engine: %v", err)
		}
		st.Engine = w
	}
	eng := st.Engine
	t.Cleanup(func() { eng.Close() })
	return &suite{Setup: st, mode: m, info: eng.Info(), keys: make(map[keyID]keyPair), sessions: sessions}
}

// wait waits for f and reports whether its result should be checked: false
// when the run injects faults and f failed with the injected one. Any other
// error fails the test.
func wait[T any](t *testing.T, s *suite, f *offload.Future[T]) (T, bool) {
	t.Helper()
	v, err := waitErr(t, s, f)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return v, err == nil && !s.injected(f.Err())
}

// waitErr waits for f, failing the test if it never resolves, and returns
// its result. An injected fault is returned as a nil error with ok false
// through wait; waitErr returns it as it is.
func waitErr[T any](t *testing.T, s *suite, f *offload.Future[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := f.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		t.Fatalf("future never resolved: %v", err)
	}
	if s.injected(err) {
		var zero T
		return zero, nil
	}
	return v, err
}

// injected reports whether err is the suite's injected fault in a run that
// injects faults.
func (s *suite) injected(err error) bool {
	return s.mode.faults && errors.Is(err, errInjected)
}

// expectErr waits for f and checks that it fails with target (or, in a
// faulty run, with the injected fault).
func expectErr[T any](t *testing.T, s *suite, f *offload.Future[T], target error, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := f.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("%s: future never resolved", what)
	}
	if s.injected(err) {
		return
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: got %v, want an error matching %v", what, err, target)
	}
}
