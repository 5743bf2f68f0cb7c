package inject

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// Engine is an offload.Engine that applies Options to another engine's
// requests before forwarding them: it delays them (Latency, Jitter), fails
// them with a Fault's error without forwarding, or drops them (the future
// resolves only when the request's context ends or the engine closes).
// Requests with nothing to inject go straight to the inner engine.
//
// No goroutine waits for a delayed or dropped request: a delay is a
// time.AfterFunc timer, a context end is a context.AfterFunc, and a
// forwarded request's result reaches the caller through the inner future's
// OnResolve hook. A delayed request that reaches its time is forwarded from
// the timer's goroutine, which therefore waits for the inner engine's
// admission when the inner engine is full.
//
// Options.NotReady is ignored: the wrapper has no queue of its own to send a
// request round.
//
// The delay is spent before the inner engine admits the request, so unlike
// the software engine's own injected latency it does not hold an in-flight
// slot of the inner engine.
//
// ImportKey and GenerateKey return keys that belong to the wrapper (their
// Engine is the wrapper, their handle the inner engine's key), so adapters
// built from such a key alone, such as signer.New(key), go through the
// wrapper. Requests carrying the inner engine's own keys are forwarded too.
type Engine struct {
	inner offload.Engine
	inj   *Injector
	name  string

	mu      sync.Mutex
	closed  bool
	waiting map[*parked]struct{} // delayed (timer not yet fired) and dropped requests
}

// parked is a request the wrapper holds: delayed or dropped.
type parked struct {
	timer *time.Timer // nil for a dropped request
	fail  func(error) // resolves the caller's future with the error
}

var (
	_ offload.Engine    = (*Engine)(nil)
	_ offload.Importer  = (*Engine)(nil)
	_ offload.Generator = (*Engine)(nil)
)

// Wrap returns an engine that applies o to eng's requests. Closing it closes
// eng.
func Wrap(eng offload.Engine, o Options) *Engine {
	return &Engine{
		inner:   eng,
		inj:     New(o),
		name:    "inject(" + eng.Info().Name + ")",
		waiting: make(map[*parked]struct{}),
	}
}

// Inner returns the wrapped engine.
func (e *Engine) Inner() offload.Engine { return e.inner }

// Info returns the inner engine's Info, named "inject(<inner name>)".
func (e *Engine) Info() offload.Info {
	i := e.inner.Info()
	i.Name = e.name
	return i
}

// Stats returns the inner engine's counters. Requests failed or dropped by
// the wrapper never reach it and are not counted there.
func (e *Engine) Stats() offload.Snapshot { return e.inner.Stats() }

// Sign applies the options, then forwards to the inner engine's Sign.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	r := *req
	r.Key = e.innerKey(req.Key)
	return submit(e, ctx, offload.OpSign, req.Key, &r.Call, nil, func() *offload.Future[[]byte] { return e.inner.Sign(ctx, &r) })
}

// Decrypt applies the options, then forwards to the inner engine's Decrypt.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	r := *req
	r.Key = e.innerKey(req.Key)
	return submit(e, ctx, offload.OpDecrypt, req.Key, &r.Call, zero, func() *offload.Future[[]byte] { return e.inner.Decrypt(ctx, &r) })
}

// Hash applies the options, then forwards to the inner engine's Hash.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	r := *req
	return submit(e, ctx, offload.OpHash, nil, &r.Call, nil, func() *offload.Future[offload.HashResult] { return e.inner.Hash(ctx, &r) })
}

// Cipher applies the options, then forwards to the inner engine's Cipher.
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	r := *req
	r.Key = e.innerKey(req.Key)
	var release func([]byte)
	if r.Decrypt {
		release = zero
	}
	return submit(e, ctx, offload.OpCipher, req.Key, &r.Call, release, func() *offload.Future[[]byte] { return e.inner.Cipher(ctx, &r) })
}

// Random applies the options, then forwards to the inner engine's Random.
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	r := *req
	return submit(e, ctx, offload.OpRandom, nil, &r.Call, zero, func() *offload.Future[[]byte] { return e.inner.Random(ctx, &r) })
}

// innerKey returns the inner engine's key behind a key of the wrapper's, and
// any other key as it is.
func (e *Engine) innerKey(k *offload.Key) *offload.Key {
	if k != nil && k.Engine() == offload.Engine(e) {
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
	return offload.NewKey(e, k.Type(), k.Bits(), k.Public(), k), nil
}

// ImportKey forwards to the inner engine when it is an offload.Importer and
// returns the key as the wrapper's.
func (e *Engine) ImportKey(priv any) (*offload.Key, error) {
	if e.isClosed() {
		return nil, fmt.Errorf("inject: import: %w", offload.ErrClosed)
	}
	im, ok := e.inner.(offload.Importer)
	if !ok {
		return nil, fmt.Errorf("inject: %s cannot import keys: %w", e.inner.Info().Name, offload.ErrUnsupported)
	}
	return e.ownKey(im.ImportKey(priv))
}

// GenerateKey forwards to the inner engine when it is an offload.Generator
// and returns the key as the wrapper's.
func (e *Engine) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	if e.isClosed() {
		return nil, fmt.Errorf("inject: generate: %w", offload.ErrClosed)
	}
	g, ok := e.inner.(offload.Generator)
	if !ok {
		return nil, fmt.Errorf("inject: %s cannot generate keys: %w", e.inner.Info().Name, offload.ErrUnsupported)
	}
	return e.ownKey(g.GenerateKey(ctx, t, bits))
}

// Close fails the requests the wrapper still holds (delayed or dropped) with
// ErrClosed, then closes the inner engine and returns its error. Calls after
// the first fail nothing more and return nil.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	held := make([]*parked, 0, len(e.waiting))
	for p := range e.waiting {
		held = append(held, p)
	}
	clear(e.waiting)
	e.mu.Unlock()
	for _, p := range held {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.fail(offload.ErrClosed)
	}
	return e.inner.Close()
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// release unregisters p and reports whether it was still held (false: Close
// or the context's end took it first).
func (e *Engine) release(p *parked) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.waiting[p]
	delete(e.waiting, p)
	return ok
}

// zero clears a secret result that will never be delivered.
func zero(b []byte) { clear(b) }

// submit applies the injector's decision to one request. call is the
// forwarded request's copy of the caller's Call: a request forwarded later,
// from a timer, must not run on that timer's goroutine as if its caller
// were waiting there. release, if not nil, is given a result the inner
// engine produced that the caller will never see.
func submit[T any](e *Engine, ctx context.Context, op offload.Op, key *offload.Key, call *offload.Call, release func(T), forward func() *offload.Future[T]) *offload.Future[T] {
	if e.isClosed() {
		return offload.Failed[T](offload.Wrap(e.name, op, offload.ErrClosed))
	}
	if ctx.Err() != nil {
		return offload.Failed[T](offload.Wrap(e.name, op, context.Cause(ctx)))
	}
	out := e.inj.Decide(op, key)
	if out.Delay <= 0 && !out.Drop {
		if out.Err != nil {
			return offload.Failed[T](offload.Wrap(e.name, op, out.Err))
		}
		return forward()
	}

	promise := offload.NewPromise[T]()
	p := &parked{fail: func(err error) { promise.Resolve(*new(T), offload.Wrap(e.name, op, err)) }}
	// Register and start the timer in one step, so that Close and the
	// context's end, which read p.timer after taking p out of the map, see it.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return offload.Failed[T](offload.Wrap(e.name, op, offload.ErrClosed))
	}
	e.waiting[p] = struct{}{}
	if !out.Drop {
		p.timer = time.AfterFunc(out.Delay, func() {
			if !e.release(p) || !promise.Pending() {
				return
			}
			if out.Err != nil {
				p.fail(out.Err)
				return
			}
			call.Inline = false
			inner := forward()
			inner.OnResolve(func() {
				v, err := inner.Poll()
				if !promise.Resolve(v, err) && err == nil && release != nil {
					release(v)
				}
			})
		})
	}
	e.mu.Unlock()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			if !e.release(p) {
				// Close took it, or the timer forwarded it: the inner
				// engine, which got the same context, answers for it.
				return
			}
			if p.timer != nil {
				p.timer.Stop()
			}
			p.fail(context.Cause(ctx))
		})
		promise.Future().OnResolve(func() { stop() })
	}
	return promise.Future()
}
