// Package soft is the pure-Go engine: the reference implementation of
// offload.Engine and the default a program embeds when it has no device.
//
// It signs with ECDSA (P-256, P-384, P-521), RSA PKCS #1 v1.5 and PSS,
// Ed25519 (pure, ph, ctx), Ed448 and ML-DSA (44, 65, 87); decrypts RSA OAEP
// and PKCS #1 v1.5; hashes SHA-224/256/384/512 statelessly, the whole state
// travelling with every request in the standard library's marshaled form;
// encrypts and decrypts AES-GCM, CBC and CTR; and draws random bytes from
// crypto/rand. Results match the standard library (and circl) exactly:
// every signature verifies with their verify functions.
//
// # Execution
//
// Operations run on a pool of worker goroutines, or, when a request sets
// offload.Call.Inline and a slot is free, on the caller's goroutine before
// the operation method returns. Admission, the in-flight limit,
// cancellation, statistics and Close come from the executor every engine
// shares.
//
// # Injection
//
// Options can add latency (fixed and jitter), make requests go round the
// queue before running (so Poll answers offload.ErrNotReady), and fail or
// drop requests, with the same model as offload/inject's wrapper (Faults
// are inject.Fault values). Tests and benchmarks use them to play a slow or
// faulty device.
package soft

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/fault"
	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/internal/optcheck"
	"github.com/offcrypt/offcrypt/offload"
)

// Name is the engine's name, as in offload.Info.Name and in its errors.
const Name = "soft"

// Defaults and limits of Options.
const (
	DefaultMaxInFlight = 256
	DefaultMaxInline   = 64 << 10
	// MinMaxInline is the smallest per-request payload cap New accepts: one
	// SHA-512 block.
	MinMaxInline = 128
)

// RSA modulus sizes the engine accepts.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// Options configures an Engine. The zero value is a ready configuration:
// one worker per CPU, 256 operations in flight, a 64 KiB payload cap and
// nothing injected. Negative values are refused, and so are Workers and
// MaxInFlight above 1<<20 (the engine makes its queue and its workers up
// front).
type Options struct {
	// Workers is the number of goroutines running queued work; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
	// MaxInFlight is the number of operations admitted at once; 0 means 256.
	MaxInFlight int
	// MaxInline caps the payload of one request, in bytes (hash data, CBC
	// and CTR input, message or digest to sign, ciphertext, random bytes); 0
	// means 64 KiB. It must be at least 128, so that one SHA-512 block fits.
	// GCM is not capped by it: a GCM message cannot be split into requests,
	// and the engine seals and opens messages of any length crypto/cipher
	// takes (Info.MaxGCM).
	MaxInline int

	// Latency is added to every operation; the operation holds its
	// in-flight slot meanwhile, as on a slow device.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter).
	Jitter time.Duration
	// NotReady makes every queued request go back to the end of the queue
	// this many times before it runs, so a caller polling it sees
	// offload.ErrNotReady that many more times. Requests that set
	// offload.Call.Inline are queued too while NotReady is set.
	NotReady int
	// Faults are checked in order for every request; the first that matches
	// fails the request with its Err (wrapped in an *offload.OpError) or,
	// with Drop, makes it vanish until its context ends or the engine
	// closes. The element type is inject.Fault (offload/inject names it).
	Faults []fault.Fault
}

// An Engine is the software engine. It implements offload.Engine,
// offload.Importer and offload.Generator, and is safe for concurrent use.
type Engine struct {
	x         *exec.Executor[struct{}]
	maxIn     int
	maxFlight int
}

var (
	_ offload.Engine    = (*Engine)(nil)
	_ offload.Importer  = (*Engine)(nil)
	_ offload.Generator = (*Engine)(nil)
)

// algorithms is everything the engine does, in Algorithm order.
var algorithms = []offload.Algorithm{
	offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521,
	offload.RSAPKCS1v15, offload.RSAPSS, offload.RSAOAEP, offload.RSAPKCS1v15Decrypt,
	offload.Ed25519, offload.Ed25519ph, offload.Ed25519ctx, offload.Ed448,
	offload.MLDSA44, offload.MLDSA65, offload.MLDSA87,
	offload.SHA224, offload.SHA256, offload.SHA384, offload.SHA512,
	offload.AESGCM, offload.AESCBC, offload.AESCTR, offload.Random,
}

// supported has bit a set for every Algorithm a in algorithms.
var supported = func() uint64 {
	var m uint64
	for _, a := range algorithms {
		m |= 1 << a
	}
	return m
}()

// New starts an engine configured by o. An option out of range (a negative
// one, a MaxInline below MinMaxInline, a fault with neither Err nor Drop)
// fails with an error wrapping offload.ErrInvalid that names the option and
// its value: "soft: Options.MaxInFlight is -1: ...".
func New(o Options) (*Engine, error) {
	fo := fault.Options{
		Latency:  o.Latency,
		Jitter:   o.Jitter,
		NotReady: o.NotReady,
		Faults:   o.Faults,
	}
	if err := optcheck.Check(Name,
		optcheck.Count("Options.Workers", o.Workers),
		optcheck.Count("Options.MaxInFlight", o.MaxInFlight),
		optcheck.Int("Options.MaxInline", o.MaxInline)); err != nil {
		return nil, err
	}
	if err := fo.Check(Name); err != nil {
		return nil, err
	}
	if o.Workers == 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxInline == 0 {
		o.MaxInline = DefaultMaxInline
	}
	if o.MaxInline < MinMaxInline {
		return nil, fmt.Errorf("soft: Options.MaxInline is %d, below %d: %w", o.MaxInline, MinMaxInline, offload.ErrInvalid)
	}
	inj := fault.New(fo)
	e := &Engine{
		maxIn:     o.MaxInline,
		maxFlight: o.MaxInFlight,
	}
	e.x = exec.New(exec.Config[struct{}]{
		Name:        Name,
		Workers:     o.Workers,
		MaxInFlight: o.MaxInFlight,
		Inject:      inj,
	})
	return e, nil
}

// Info describes the engine. The Algorithms slice is the caller's own copy.
func (e *Engine) Info() offload.Info {
	return offload.Info{
		Name:        Name,
		MaxInFlight: e.maxFlight,
		MaxInline:   e.maxIn,
		MaxGCM:      gcmauth.MaxInput,
		MinRSABits:  MinRSABits,
		MaxRSABits:  MaxRSABits,
		Algorithms:  slices.Clone(algorithms),
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() offload.Snapshot { return e.x.Stats() }

// Close fails every queued operation with offload.ErrClosed, waits for the
// work in progress and stops the workers. It always returns nil; calls after
// the first do nothing more.
func (e *Engine) Close() error {
	e.x.Close()
	return nil
}

// admit runs the checks every keyed operation makes before it is submitted:
// the engine is open, the key is this engine's and the algorithm is one the
// engine does.
func (e *Engine) admit(key *offload.Key, alg offload.Algorithm) error {
	if e.x.Closed() {
		return offload.ErrClosed
	}
	if key != nil && key.Engine() != offload.Engine(e) {
		return fmt.Errorf("soft: %w: %v", offload.ErrForeignKey, key)
	}
	if alg >= 64 || supported&(1<<alg) == 0 {
		return fmt.Errorf("soft: %w: %v", offload.ErrUnsupported, alg)
	}
	return nil
}

// invalid returns an error wrapping offload.ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("soft: %w: "+format, append([]any{offload.ErrInvalid}, args...)...)
}

// handle returns key's handle as a T, or an error when the key was made by
// this engine with another kind of handle (only a forged key can be).
func handle[T any](key *offload.Key) (T, error) {
	h, ok := key.Handle().(T)
	if !ok {
		var zero T
		return zero, invalid("key handle of type %T", key.Handle())
	}
	return h, nil
}

// wrapErr prefixes a library error with the package name, keeping it in the
// chain.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("soft: %w", err)
}

var errNilKey = errors.New("nil private key")
