package compose

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/internal/facet"
	"github.com/offcrypt/offcrypt/internal/optcheck"
	"github.com/offcrypt/offcrypt/offload"
)

// DefaultThreshold is Options.Threshold's default: symmetric requests
// shorter than 2,048 bytes go to the second engine.
const DefaultThreshold = 2048

// Options configure a composed engine. The zero value keeps symmetric work
// under DefaultThreshold in the second engine and never falls back.
type Options struct {
	// Threshold is the size in bytes below which a Cipher request's Input
	// or a Hash request's Data goes to the second engine. 0 means
	// DefaultThreshold; 1 sends everything but empty input to the first.
	Threshold int
	// Fallback sends a request that the first engine failed with a device
	// error to the second engine, when the request's key is held by both.
	Fallback bool
	// DeviceError says which failures of the first engine are device
	// errors. Nil means those matching offload.ErrUnavailable or
	// offload.ErrBusy.
	DeviceError func(error) bool
}

// IsDeviceError is the default Options.DeviceError: the device cannot be
// reached now (offload.ErrUnavailable) or cannot take the request now
// (offload.ErrBusy).
func IsDeviceError(err error) bool {
	return errors.Is(err, offload.ErrUnavailable) || errors.Is(err, offload.ErrBusy)
}

// Engine is the composed engine New returns (inside the value that carries
// its optional interfaces). Its methods are safe for concurrent use.
type Engine struct {
	first, second offload.Engine
	opt           Options
	info          offload.Info
	self          offload.Engine // what New returned: the engine the composed keys name
	stats         offload.Stats

	closed    atomic.Bool
	closeOnce sync.Once
}

// New composes first and second (see the package documentation). Closing
// the engine it returns closes both. The engine offers exactly the
// optional interfaces it can honour: offload.Importer and
// offload.Generator when either engine does, offload.HashSessioner when
// the first does.
//
// A nil engine, the same engine twice, or a negative Threshold ("compose:
// Options.Threshold is -1: ...") fail with an error wrapping
// offload.ErrInvalid; the engines stay the caller's then, open.
func New(first, second offload.Engine, o Options) (offload.Engine, error) {
	switch {
	case first == nil || second == nil:
		return nil, fmt.Errorf("compose: %w: nil engine", offload.ErrInvalid)
	case first == second:
		return nil, fmt.Errorf("compose: %w: one engine given twice", offload.ErrInvalid)
	}
	if err := optcheck.Check("compose", optcheck.Int("Options.Threshold", o.Threshold)); err != nil {
		return nil, err
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.DeviceError == nil {
		o.DeviceError = IsDeviceError
	}
	e := &Engine{first: first, second: second, opt: o, info: union(first.Info(), second.Info())}
	var (
		im  offload.Importer
		gen offload.Generator
		hs  offload.HashSessioner
	)
	if isImporter(first) || isImporter(second) {
		im = (*importer)(e)
	}
	if isGenerator(first) || isGenerator(second) {
		gen = (*generator)(e)
	}
	if _, ok := first.(offload.HashSessioner); ok {
		hs = (*sessioner)(e)
	}
	e.self = facet.With(e, im, gen, hs)
	return e.self, nil
}

func isImporter(e offload.Engine) bool  { _, ok := e.(offload.Importer); return ok }
func isGenerator(e offload.Engine) bool { _, ok := e.(offload.Generator); return ok }

// Engines returns the two engines under a composed engine, or nils when
// eng is not one.
func Engines(eng offload.Engine) (first, second offload.Engine) {
	if e, ok := facet.Base(eng).(*Engine); ok {
		return e.first, e.second
	}
	return nil, nil
}

// union describes the pair: what either can do, the smaller payload caps
// (a request may be served by either), the sum of their in-flight limits.
func union(a, b offload.Info) offload.Info {
	i := offload.Info{
		Name:        "compose(" + a.Name + "," + b.Name + ")",
		MaxInFlight: a.MaxInFlight + b.MaxInFlight,
		MaxInline:   min(a.MaxInline, b.MaxInline),
		MaxGCM:      min(a.GCMLimit(), b.GCMLimit()),
		MaxRSABits:  max(a.MaxRSABits, b.MaxRSABits),
	}
	switch {
	case a.MinRSABits == 0:
		i.MinRSABits = b.MinRSABits
	case b.MinRSABits == 0:
		i.MinRSABits = a.MinRSABits
	default:
		i.MinRSABits = min(a.MinRSABits, b.MinRSABits)
	}
	i.Algorithms = slices.Concat(a.Algorithms, b.Algorithms)
	slices.SortFunc(i.Algorithms, func(x, y offload.Algorithm) int { return cmp.Compare(x, y) })
	i.Algorithms = slices.Compact(i.Algorithms)
	return i
}

// Info describes the pair: named "compose(<first>,<second>)", it claims
// what either engine claims.
func (e *Engine) Info() offload.Info {
	i := e.info
	i.Algorithms = slices.Clone(i.Algorithms)
	return i
}

// Stats counts the composed engine's requests as its callers see them,
// with OpStats.Fallbacks counting those that went to the second engine
// after the first failed. Requests refused before either engine saw them
// (a closed engine, a foreign key) are not counted.
func (e *Engine) Stats() offload.Snapshot { return e.stats.Snapshot() }

// Close closes the first engine, then the second, and returns their
// errors joined. Requests falling back while the first closes still reach
// the second. Every call after Close fails with offload.ErrClosed; calls
// after the first Close return nil.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		err = errors.Join(e.first.Close(), e.second.Close())
	})
	return err
}

// Reason says why a request went where it went.
type Reason uint8

// Reasons.
const (
	First       Reason = iota + 1 // the first engine, as by default
	Small                         // the second: symmetric work under the threshold
	Unsupported                   // the second: the first refused it with offload.ErrUnsupported
	SecondOnly                    // the second: the key is the second's alone
	Fallback                      // the second: the first failed with a device error
)

var reasonNames = [...]string{"", "first", "small", "unsupported", "second-only", "fallback"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && r > 0 {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// A Route says where one request went. Record makes a context that fills
// one in; it is complete once the request's future has resolved.
type Route struct {
	Engine   offload.Engine // the engine that served the request
	Reason   Reason
	FirstErr error // after a Fallback or an Unsupported: what the first engine answered
}

type routeKey struct{}

// Record returns a context for one request to the composed engine that
// has it fill in r, before its future resolves. One Route serves one
// request at a time.
func Record(ctx context.Context, r *Route) context.Context {
	return context.WithValue(ctx, routeKey{}, r)
}

// pair is a composed key's handle: the key in each engine, nil where the
// engine does not hold it.
type pair struct{ first, second *offload.Key }

// Name names the composed key as its engines do (Key.Name): the first
// engine's name for it, else the second's.
func (p *pair) Name() string {
	if p.first != nil && p.first.Name() != "" {
		return p.first.Name()
	}
	if p.second != nil {
		return p.second.Name()
	}
	return ""
}

// keys returns the halves of k: a composed key's, or the engine's own key
// as a half, or ErrForeignKey. A nil k (hash, random) is held by both.
func (e *Engine) keys(k *offload.Key) (pair, error) {
	switch {
	case k == nil:
		return pair{}, nil
	case k.Engine() == e.self:
		if p, ok := k.Handle().(*pair); ok {
			return *p, nil
		}
	case k.Engine() == e.first:
		return pair{first: k}, nil
	case k.Engine() == e.second:
		return pair{second: k}, nil
	}
	return pair{}, fmt.Errorf("compose: %w", offload.ErrForeignKey)
}

// request is one request's routing: its kind, its key's halves, whether
// it is symmetric work under the threshold, a copy of the caller's request
// (R: offload.SignRequest, CipherRequest, ...) and how to send it. It is a
// value: only a request that waits for the first engine moves to the heap.
type request[R, T any] struct {
	e     *Engine
	ctx   context.Context
	op    offload.Op
	keyed bool // the request names a key
	p     pair
	small bool
	req   R
	// send sends req to eng with key (nil for keyless requests); async
	// says it is sent from another engine's goroutine, where the caller's
	// Call.Inline and Out no longer hold. It is a plain function, so that
	// routing a request allocates no closure.
	send func(ctx context.Context, eng offload.Engine, req R, key *offload.Key, async bool) *offload.Future[T]
}

func (r *request[R, T]) onFirst() bool  { return !r.keyed || r.p.first != nil }
func (r *request[R, T]) onSecond() bool { return !r.keyed || r.p.second != nil }

func (r *request[R, T]) toFirst(async bool) *offload.Future[T] {
	return r.send(r.ctx, r.e.first, r.req, r.p.first, async)
}

func (r *request[R, T]) toSecond(async bool) *offload.Future[T] {
	return r.send(r.ctx, r.e.second, r.req, r.p.second, async)
}

// run routes the request and returns its future.
func run[R, T any](r request[R, T]) *offload.Future[T] {
	e := r.e
	if err := offload.CheckContext(r.ctx); err != nil {
		return offload.Failed[T](offload.Wrap(e.info.Name, r.op, err))
	}
	if e.closed.Load() {
		return offload.Failed[T](offload.Wrap(e.info.Name, r.op, offload.ErrClosed))
	}
	start := e.stats.Start(r.op)
	route, _ := r.ctx.Value(routeKey{}).(*Route)
	if !r.onFirst() || r.small && r.onSecond() {
		why := SecondOnly
		if r.onFirst() {
			why = Small
		}
		return finish(e, r.op, start, route, why, nil, r.toSecond(false))
	}
	f := r.toFirst(false)
	if _, err := f.Poll(); err != offload.ErrNotReady {
		if why, ok := r.reroute(err); ok {
			return finish(e, r.op, start, route, why, err, r.toSecond(false))
		}
		return finish(e, r.op, start, route, First, nil, f)
	}
	// The first engine is working: its answer decides, on its goroutine.
	ar := new(request[R, T])
	*ar = r
	pr := offload.NewPromise[T]()
	f.OnResolve(func() {
		v, err := f.Poll()
		why, ok := ar.reroute(err)
		if !ok {
			e.note(route, First, nil)
			e.stats.Finish(ar.op, start, err)
			pr.Resolve(v, err)
			return
		}
		g := ar.toSecond(true)
		e.note(route, why, err)
		g.OnResolve(func() {
			v, err := g.Poll()
			e.stats.Finish(ar.op, start, err)
			pr.Resolve(v, err)
		})
	})
	return pr.Future()
}

// reroute says whether a request the first engine answered with err goes
// to the second, and why; a fallback is counted here.
func (r *request[R, T]) reroute(err error) (Reason, bool) {
	switch {
	case err == nil || !r.onSecond() || r.ctx.Err() != nil:
		return 0, false
	case errors.Is(err, offload.ErrUnsupported):
		return Unsupported, true
	case r.e.opt.Fallback && r.e.opt.DeviceError(err) && !errors.Is(err, offload.ErrClosed):
		r.e.stats.Fallback(r.op)
		return Fallback, true
	}
	return 0, false
}

// finish records where a request went and counts it once f resolves.
func finish[T any](e *Engine, op offload.Op, start time.Time, route *Route, why Reason, firstErr error, f *offload.Future[T]) *offload.Future[T] {
	e.note(route, why, firstErr)
	if err := f.Err(); err != offload.ErrNotReady {
		e.stats.Finish(op, start, err)
		return f
	}
	f.OnResolve(func() { e.stats.Finish(op, start, f.Err()) })
	return f
}

// note fills in the caller's Route, if it asked for one.
func (e *Engine) note(route *Route, why Reason, firstErr error) {
	if route == nil {
		return
	}
	route.Reason, route.FirstErr = why, firstErr
	route.Engine = e.second
	if why == First {
		route.Engine = e.first
	}
}

// Sign signs on the first engine, or on the second where the key or a
// fallback sends it.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	if req == nil {
		return offload.Failed[[]byte](offload.Errorf(e.info.Name, offload.OpSign, "%w: nil request", offload.ErrInvalid))
	}
	return keyed(e, ctx, offload.OpSign, req.Key, false, *req, sendSign)
}

func sendSign(ctx context.Context, eng offload.Engine, r offload.SignRequest, key *offload.Key, async bool) *offload.Future[[]byte] {
	r.Key = key
	r.Inline = r.Inline && !async
	return eng.Sign(ctx, &r)
}

// Decrypt decrypts on the first engine, or on the second where the key or
// a fallback sends it.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	if req == nil {
		return offload.Failed[[]byte](offload.Errorf(e.info.Name, offload.OpDecrypt, "%w: nil request", offload.ErrInvalid))
	}
	return keyed(e, ctx, offload.OpDecrypt, req.Key, false, *req, sendDecrypt)
}

func sendDecrypt(ctx context.Context, eng offload.Engine, r offload.DecryptRequest, key *offload.Key, async bool) *offload.Future[[]byte] {
	r.Key = key
	r.Inline = r.Inline && !async
	return eng.Decrypt(ctx, &r)
}

// Cipher sends Input shorter than the threshold to the second engine and
// the rest to the first, unless the key or a fallback decides otherwise.
// A request sent again from the first engine's goroutine no longer writes
// into Out (the caller may have stopped waiting).
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	if req == nil {
		return offload.Failed[[]byte](offload.Errorf(e.info.Name, offload.OpCipher, "%w: nil request", offload.ErrInvalid))
	}
	if req.Mode == offload.ModeGCM && len(req.Input) > e.info.MaxGCM {
		// Either engine may serve it: the smaller limit holds.
		return offload.Failed[[]byte](offload.Errorf(e.info.Name, offload.OpCipher, "%w: a GCM input of %d bytes, more than Info.MaxGCM %d",
			offload.ErrInvalid, len(req.Input), e.info.MaxGCM))
	}
	return keyed(e, ctx, offload.OpCipher, req.Key, len(req.Input) < e.opt.Threshold, *req, sendCipher)
}

func sendCipher(ctx context.Context, eng offload.Engine, r offload.CipherRequest, key *offload.Key, async bool) *offload.Future[[]byte] {
	r.Key = key
	if async {
		r.Inline, r.Out = false, nil
	}
	return eng.Cipher(ctx, &r)
}

// Hash sends Data shorter than the threshold to the second engine and the
// rest to the first; an engine that hashes only in sessions refuses it
// with offload.ErrUnsupported and the second does it.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	if req == nil {
		return offload.Failed[offload.HashResult](offload.Errorf(e.info.Name, offload.OpHash, "%w: nil request", offload.ErrInvalid))
	}
	return run(request[offload.HashRequest, offload.HashResult]{e: e, ctx: ctx, op: offload.OpHash,
		small: len(req.Data) < e.opt.Threshold, req: *req, send: sendHash})
}

func sendHash(ctx context.Context, eng offload.Engine, r offload.HashRequest, _ *offload.Key, async bool) *offload.Future[offload.HashResult] {
	r.Inline = r.Inline && !async
	return eng.Hash(ctx, &r)
}

// Random asks the first engine, and the second when the first has no
// generator (offload.ErrUnsupported) or, with Fallback, fails. A request
// for no bytes is answered at once, as every engine answers it.
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	if e.closed.Load() {
		return offload.Failed[[]byte](offload.Wrap(e.info.Name, offload.OpRandom, offload.ErrClosed))
	}
	empty, err := req.Check(e.info.MaxInline)
	switch {
	case err != nil:
		return offload.Failed[[]byte](offload.Wrap(e.info.Name, offload.OpRandom, err))
	case empty:
		return offload.Resolved([]byte{}, nil)
	}
	return run(request[offload.RandomRequest, []byte]{e: e, ctx: ctx, op: offload.OpRandom, req: *req, send: sendRandom})
}

func sendRandom(ctx context.Context, eng offload.Engine, r offload.RandomRequest, _ *offload.Key, async bool) *offload.Future[[]byte] {
	r.Inline = r.Inline && !async
	return eng.Random(ctx, &r)
}

// keyed routes a request that names key.
func keyed[R any](e *Engine, ctx context.Context, op offload.Op, key *offload.Key, small bool, req R,
	send func(context.Context, offload.Engine, R, *offload.Key, bool) *offload.Future[[]byte]) *offload.Future[[]byte] {
	p, err := e.keys(key)
	switch {
	case e.closed.Load():
		err = offload.ErrClosed
	case key == nil:
		err = fmt.Errorf("%w: nil key", offload.ErrInvalid)
	}
	if err != nil {
		return offload.Failed[[]byte](offload.Wrap(e.info.Name, op, err))
	}
	return run(request[R, []byte]{e: e, ctx: ctx, op: op, keyed: true, p: p, small: small, req: req, send: send})
}

// importer, generator and sessioner carry the optional methods; New
// offers those the engines can honour.
type (
	importer  Engine
	generator Engine
	sessioner Engine
)

// ImportKey imports priv into each engine that takes it and returns the
// pair as a key of the composed engine. An engine that answers
// offload.ErrUnsupported (or cannot import at all) does not hold the key;
// when neither holds it, or an engine refuses it otherwise, the import
// fails with that engine's error.
func (i *importer) ImportKey(priv any) (*offload.Key, error) {
	e := (*Engine)(i)
	if e.closed.Load() {
		return nil, fmt.Errorf("compose: import: %w", offload.ErrClosed)
	}
	var p pair
	var errs []error
	for _, side := range []struct {
		eng offload.Engine
		key **offload.Key
	}{{e.first, &p.first}, {e.second, &p.second}} {
		im, ok := side.eng.(offload.Importer)
		if !ok {
			continue
		}
		k, err := im.ImportKey(priv)
		if err != nil && !errors.Is(err, offload.ErrUnsupported) {
			return nil, err
		}
		*side.key = k
		errs = append(errs, err)
	}
	if p.first == nil && p.second == nil {
		return nil, errors.Join(errs...)
	}
	return e.own(p), nil
}

// own makes the composed key for p, described by whichever half it has.
func (e *Engine) own(p pair) *offload.Key {
	k := cmp.Or(p.first, p.second)
	return offload.NewKey(e.self, k.Type(), k.Bits(), k.Public(), &p)
}

// GenerateKey makes a key in the first engine, or in the second when the
// first cannot make it (no Generator, or offload.ErrUnsupported). The key
// stays in the engine that made it: it has no other half, so its requests
// always go there.
func (g *generator) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	e := (*Engine)(g)
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("compose: generate: %w", err)
	}
	if e.closed.Load() {
		return nil, fmt.Errorf("compose: generate: %w", offload.ErrClosed)
	}
	if gen, ok := e.first.(offload.Generator); ok {
		k, err := gen.GenerateKey(ctx, t, bits)
		if err == nil {
			return e.own(pair{first: k}), nil
		}
		if !errors.Is(err, offload.ErrUnsupported) || !isGenerator(e.second) {
			return nil, err
		}
	}
	k, err := e.second.(offload.Generator).GenerateKey(ctx, t, bits)
	if err != nil {
		return nil, err
	}
	return e.own(pair{second: k}), nil
}

// HashSession opens a session on the first engine; on the second, when it
// offers sessions, if the first does not do h (offload.ErrUnsupported) or,
// with Fallback, fails to open one with a device error (counted in
// OpStats.Fallbacks). The session stays where it opened.
func (s *sessioner) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	e := (*Engine)(s)
	if err := offload.CheckContext(ctx); err != nil {
		return nil, offload.Wrap(e.info.Name, offload.OpHash, err)
	}
	if e.closed.Load() {
		return nil, offload.Wrap(e.info.Name, offload.OpHash, offload.ErrClosed)
	}
	hs, err := e.first.(offload.HashSessioner).HashSession(ctx, h)
	other, ok := e.second.(offload.HashSessioner)
	switch {
	case err == nil || !ok || ctx.Err() != nil:
		return hs, err
	case errors.Is(err, offload.ErrUnsupported):
	case e.opt.Fallback && e.opt.DeviceError(err):
		e.stats.Fallback(offload.OpHash)
	default:
		return nil, err
	}
	return other.HashSession(ctx, h)
}

// errMismatch fails a Pair whose halves are not one key.
var errMismatch = fmt.Errorf("compose: %w: the two keys differ", offload.ErrInvalid)

// Pair joins a key of the first engine and a key of the second, made
// apart (each engine's own import, generation or lookup), into one key of
// the composed engine eng. The halves must be one key: same type and size
// and equal public keys; for AES keys, both engines seal one GCM message
// under ctx and the results must match (an engine that cannot seal GCM
// leaves the check to the caller). Otherwise Pair fails with an error
// wrapping offload.ErrInvalid, or offload.ErrForeignKey for a key of
// neither engine.
func Pair(ctx context.Context, eng offload.Engine, first, second *offload.Key) (*offload.Key, error) {
	e, ok := facet.Base(eng).(*Engine)
	switch {
	case offload.CheckContext(ctx) != nil:
		return nil, fmt.Errorf("compose: pair: %w", offload.CheckContext(ctx))
	case !ok:
		return nil, fmt.Errorf("compose: %w: not a composed engine", offload.ErrInvalid)
	case first == nil || second == nil:
		return nil, fmt.Errorf("compose: %w: nil key", offload.ErrInvalid)
	case first.Engine() != e.first || second.Engine() != e.second:
		return nil, fmt.Errorf("compose: %w: a pair is the first engine's key and the second's", offload.ErrForeignKey)
	case first.Type() != second.Type() || first.Bits() != second.Bits():
		return nil, fmt.Errorf("%w: %v/%d and %v/%d", errMismatch, first.Type(), first.Bits(), second.Type(), second.Bits())
	}
	if pub, ok := first.Public().(interface{ Equal(crypto.PublicKey) bool }); ok {
		if !pub.Equal(second.Public()) {
			return nil, errMismatch
		}
	} else if first.Type() == offload.KeyAES && e.first.Info().Supports(offload.AESGCM) && e.second.Info().Supports(offload.AESGCM) {
		if err := sameAES(ctx, e, first, second); err != nil {
			return nil, err
		}
	}
	return e.own(pair{first: first, second: second}), nil
}

// sameAES seals one block of zeros under a zero nonce with both keys (a
// probe that encrypts nothing secret) and compares the results.
func sameAES(ctx context.Context, e *Engine, first, second *offload.Key) error {
	seal := func(eng offload.Engine, k *offload.Key) ([]byte, error) {
		return eng.Cipher(ctx, &offload.CipherRequest{Key: k, Mode: offload.ModeGCM,
			IV: make([]byte, 12), Input: make([]byte, 16)}).Wait(ctx)
	}
	a, err := seal(e.first, first)
	if err != nil {
		return fmt.Errorf("compose: pair check on the first engine: %w", err)
	}
	b, err := seal(e.second, second)
	if err != nil {
		return fmt.Errorf("compose: pair check on the second engine: %w", err)
	}
	if !bytes.Equal(a, b) {
		return errMismatch
	}
	return nil
}
