package inject

import (
	"context"
	"crypto"
	"fmt"
	"sync"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/facet"
	"github.com/offcrypt/offcrypt/internal/fault"
	"github.com/offcrypt/offcrypt/offload"
)

// Engine applies Options to another engine's requests before forwarding
// them. Wrap returns it.
//
// The wrapper is a device that completes on its own to the executor under
// it: a request is admitted against the inner engine's in-flight limit,
// forwarded at once (or failed, dropped, or sent round the queue first, as
// the options decide), and its result, when the inner future resolves, is
// delivered at once or held for the injected delay with the wrapper's slot
// held, so a wrapped engine behaves as a slower device. The wrapper has one
// goroutine of its own, which serves requests sent round its queue
// (NotReady) until Close; no goroutine waits for a request.
//
// ImportKey and GenerateKey return keys that belong to the wrapper (their
// Engine is the wrapper, their handle the inner engine's key), so adapters
// built from such a key alone, such as signer.New(key), go through the
// wrapper. Requests carrying the inner engine's own keys are forwarded too.
type Engine struct {
	inner offload.Engine
	name  string
	max   int // the inner engine's Info().MaxInline
	x     *exec.Executor[struct{}]
	self  offload.Engine // what Wrap returned: the engine the wrapper's keys name

	closeOnce sync.Once
	closeErr  error
}

// Wrap returns an engine that applies o to eng's requests. Closing it closes
// eng. The engine returned implements exactly the optional interfaces of
// offload that eng does (offload.Importer, offload.Generator,
// offload.HashSessioner), so code that looks for them finds what the inner
// engine offers; Unwrap returns eng.
//
// Options that make no sense fail with an error wrapping offload.ErrInvalid
// that names the option and its value ("inject: Options.Latency is -1ms:
// ..."): a negative Latency, Jitter or NotReady (zero means none), or a
// fault with neither Err nor Drop. So does a nil eng. eng stays the
// caller's then, open.
func Wrap(eng offload.Engine, o Options) (offload.Engine, error) {
	if eng == nil {
		return nil, fmt.Errorf("inject: nil engine: %w", offload.ErrInvalid)
	}
	if err := o.Check("inject"); err != nil {
		return nil, err
	}
	info := eng.Info()
	e := &Engine{inner: eng, name: "inject(" + info.Name + ")", max: info.MaxInline}
	e.x = exec.New(exec.Config[struct{}]{
		Name:        e.name,
		MaxInFlight: info.MaxInFlight,
		Inject:      fault.New(o),
	})
	var (
		im  offload.Importer
		gen offload.Generator
		hs  offload.HashSessioner
	)
	if _, ok := eng.(offload.Importer); ok {
		im = (*importer)(e)
	}
	if _, ok := eng.(offload.Generator); ok {
		gen = (*generator)(e)
	}
	if _, ok := eng.(offload.HashSessioner); ok {
		hs = (*sessioner)(e)
	}
	e.self = facet.With(e, im, gen, hs)
	return e.self, nil
}

// Unwrap returns the engine under a wrapper Wrap returned, or nil when eng
// is not one.
func Unwrap(eng offload.Engine) offload.Engine {
	if w, ok := facet.Base(eng).(*Engine); ok {
		return w.inner
	}
	return nil
}

// Info returns the inner engine's Info, named "inject(<inner name>)".
func (e *Engine) Info() offload.Info {
	i := e.inner.Info()
	i.Name = e.name
	return i
}

// Stats returns the inner engine's counters. Requests failed or dropped by
// the wrapper never reach it and are not counted there.
func (e *Engine) Stats() offload.Snapshot { return e.inner.Stats() }

// Close fails the requests the wrapper still holds (queued, delayed or
// dropped) with offload.ErrClosed, waits for those the inner engine is
// doing, then closes the inner engine and returns its error. Calls after
// the first fail nothing more and return nil.
func (e *Engine) Close() error {
	first := false
	e.closeOnce.Do(func() {
		first = true
		e.x.Close()
		e.closeErr = e.inner.Close()
	})
	if first {
		return e.closeErr
	}
	return nil
}

// Sign applies the options, then forwards to the inner engine's Sign.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	if req == nil {
		return nilRequest[[]byte](e, offload.OpSign)
	}
	r := *req
	r.Key = e.innerKey(req.Key)
	return forward(e, ctx, offload.OpSign, req.Key, &r.Call, nil, func() *offload.Future[[]byte] { return e.inner.Sign(ctx, &r) })
}

// Decrypt applies the options, then forwards to the inner engine's Decrypt.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	if req == nil {
		return nilRequest[[]byte](e, offload.OpDecrypt)
	}
	r := *req
	r.Key = e.innerKey(req.Key)
	return forward(e, ctx, offload.OpDecrypt, req.Key, &r.Call, zero, func() *offload.Future[[]byte] { return e.inner.Decrypt(ctx, &r) })
}

// Hash applies the options, then forwards to the inner engine's Hash.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	if req == nil {
		return nilRequest[offload.HashResult](e, offload.OpHash)
	}
	r := *req
	return forward(e, ctx, offload.OpHash, nil, &r.Call, nil, func() *offload.Future[offload.HashResult] { return e.inner.Hash(ctx, &r) })
}

// Cipher applies the options, then forwards to the inner engine's Cipher.
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	if req == nil {
		return nilRequest[[]byte](e, offload.OpCipher)
	}
	r := *req
	r.Key = e.innerKey(req.Key)
	var release func([]byte)
	if r.Decrypt {
		release = zero
	}
	return forward(e, ctx, offload.OpCipher, req.Key, &r.Call, release, func() *offload.Future[[]byte] { return e.inner.Cipher(ctx, &r) })
}

// Random applies the options, then forwards to the inner engine's Random.
// A request for no bytes is answered at once, as every engine answers it
// (see offload.RandomRequest): nothing is injected into it.
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	if e.x.Closed() {
		return exec.Fail[[]byte](e.x, offload.OpRandom, offload.ErrClosed)
	}
	empty, err := req.Check(e.max)
	switch {
	case err != nil:
		return exec.Fail[[]byte](e.x, offload.OpRandom, fmt.Errorf("inject: %w", err))
	case empty:
		return offload.Resolved([]byte{}, nil)
	}
	r := *req
	return forward(e, ctx, offload.OpRandom, nil, &r.Call, zero, func() *offload.Future[[]byte] { return e.inner.Random(ctx, &r) })
}

// nilRequest fails a nil request, as every engine does.
func nilRequest[T any](e *Engine, op offload.Op) *offload.Future[T] {
	return exec.Fail[T](e.x, op, fmt.Errorf("inject: %w: nil request", offload.ErrInvalid))
}

// zero clears a secret result that will never be delivered.
func zero(b []byte) { clear(b) }

// forward runs one request through the executor. call is the forwarded
// request's copy of the caller's Call: a request forwarded from a worker
// (after injected spins) must not run there as if its caller waited on that
// goroutine. release, if not nil, is given a result the inner engine
// produced that the caller will never see.
func forward[T any](e *Engine, ctx context.Context, op offload.Op, key *offload.Key, call *offload.Call, release func(T), inner func() *offload.Future[T]) *offload.Future[T] {
	return exec.Submit(e.x, ctx, exec.Op[struct{}, T]{
		Kind:    op,
		Call:    *call,
		Key:     key,
		Release: release,
		Start: func(inline bool, done func(T, error)) error {
			call.Inline = inline
			f := inner()
			f.OnResolve(func() { done(f.Poll()) })
			return nil
		},
	})
}

// innerKey returns the inner engine's key behind a key of the wrapper's, and
// any other key as it is.
func (e *Engine) innerKey(k *offload.Key) *offload.Key {
	if k != nil && k.Engine() == e.self {
		if ik, ok := k.Handle().(*offload.Key); ok {
			return ik
		}
	}
	return k
}

// ownKey wraps a key of the inner engine's as a key of the wrapper's.
func (e *Engine) ownKey(k *offload.Key, err error) (*offload.Key, error) {
	if err != nil {
		return nil, err
	}
	return offload.NewKey(e.self, k.Type(), k.Bits(), k.Public(), k), nil
}

// importer, generator and sessioner carry the optional methods; Wrap
// embeds those the inner engine has.
type (
	importer  Engine
	generator Engine
	sessioner Engine
)

// ImportKey forwards to the inner engine and returns the key as the
// wrapper's.
func (i *importer) ImportKey(priv any) (*offload.Key, error) {
	e := (*Engine)(i)
	if e.x.Closed() {
		return nil, fmt.Errorf("inject: import: %w", offload.ErrClosed)
	}
	return e.ownKey(e.inner.(offload.Importer).ImportKey(priv))
}

// GenerateKey forwards to the inner engine and returns the key as the
// wrapper's.
func (g *generator) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	e := (*Engine)(g)
	if e.x.Closed() {
		return nil, fmt.Errorf("inject: generate: %w", offload.ErrClosed)
	}
	return e.ownKey(e.inner.(offload.Generator).GenerateKey(ctx, t, bits))
}

// HashSession opens the inner engine's session; its Update and Final go
// through the options like every request (as OpHash), and a request the
// wrapper fails or drops ends the inner session, as a device ends its
// operation on an error.
func (s *sessioner) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	e := (*Engine)(s)
	if e.x.Closed() {
		return nil, offload.Wrap(e.name, offload.OpHash, offload.ErrClosed)
	}
	in, err := e.inner.(offload.HashSessioner).HashSession(ctx, h)
	if err != nil {
		return nil, err
	}
	return &session{e: e, in: in}, nil
}

// session is a wrapped hash session.
type session struct {
	e  *Engine
	in offload.HashSession
}

// Update forwards to the inner session's Update through the options.
func (s *session) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	return sessionStep(s, ctx, func() *offload.Future[struct{}] { return s.in.Update(ctx, data) })
}

// Final forwards to the inner session's Final through the options.
func (s *session) Final(ctx context.Context) *offload.Future[[]byte] {
	return sessionStep(s, ctx, func() *offload.Future[[]byte] { return s.in.Final(ctx) })
}

// Close closes the inner session.
func (s *session) Close() error { return s.in.Close() }

func sessionStep[T any](s *session, ctx context.Context, inner func() *offload.Future[T]) *offload.Future[T] {
	f := forward(s.e, ctx, offload.OpHash, nil, &offload.Call{}, nil, inner)
	f.OnResolve(func() {
		if f.Err() != nil {
			s.in.Close()
		}
	})
	return f
}
