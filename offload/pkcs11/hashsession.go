//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"runtime"
	"sync"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/offload"
)

var _ offload.HashSessioner = (*Engine)(nil)

// errStreamClosed ends a hash stream its caller closed before Final.
var errStreamClosed = fmt.Errorf("pkcs11: hash session closed before Final: %w", offload.ErrClosed)

// HashSession starts a digest with h (SHA-224, SHA-256, SHA-384 or SHA-512,
// where the token's mechanism list has it; otherwise an error wrapping
// offload.ErrUnsupported, before any session is used) and returns it once
// an in-flight slot is had; ctx bounds only that wait.
//
// The session is a stream pinned to one of the engine's workers: that
// worker calls C_DigestInit on its own PKCS #11 session and then serves
// only this stream's Update (C_DigestUpdate) and Final (C_DigestFinal)
// until Final, a failure or Close, and then goes back to the pool. No
// goroutine is started per stream. A stream therefore holds one slot and
// one worker for as long as it is open: callers must call Final or Close
// (a session that is garbage collected unfinished is closed, but only
// whenever the collector gets to it).
//
// A context that ends during Update or Final resolves that future at once
// with its error and ends the stream; the worker finishes the C call, ends
// the token's digest operation and frees itself. A session lost underneath
// the stream fails it (the running digest is gone with the session; nothing
// is retried) and the worker recovers its session for later operations; so
// does a re-initialisation of the module by another worker, which fails the
// stream's next call with an error wrapping offload.ErrUnavailable. Close of
// the engine fails open streams with offload.ErrClosed.
func (e *Engine) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	const op = offload.OpHash
	wrap := func(err error) error { return offload.Wrap(name, op, err) }
	m, ok := digestMechs[h]
	if !ok || !e.hasMech(m, pkcs11.CKF_DIGEST) {
		return nil, wrap(fmt.Errorf("pkcs11: hash session %v: %w", h, offload.ErrUnsupported))
	}
	if e.closed.Load() {
		return nil, wrap(errClosed)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, wrap(err)
	}
	if ctx.Err() != nil {
		return nil, wrap(context.Cause(ctx))
	}
	probe, err := e.brk.admit()
	if err != nil {
		return nil, wrap(err)
	}
	s := &stream{e: e, h: h}
	s.pin, err = exec.Pin(e.x, ctx, exec.PinSpec[*worker]{Kind: op, Probe: probe, Cleanup: s.cleanup, Finished: errFinished})
	if err != nil {
		return nil, err
	}
	// The digest begins on the pinned worker, as the stream's first step:
	// its failure ends the stream, and the caller's next call reports it.
	mechs := []*pkcs11.Mechanism{pkcs11.NewMechanism(m, nil)}
	exec.Do(s.pin, context.Background(), exec.Step[*worker, struct{}]{Repeat: true,
		Work: func(w *worker) (struct{}, error) {
			if err := w.p.DigestInit(w.sh, mechs); err != nil {
				return struct{}{}, ckErr("C_DigestInit", err)
			}
			s.active = true
			if probe {
				e.brk.success() // the probe found the token working
			}
			return struct{}{}, nil
		}})
	// The pinned worker holds s; the caller holds only the handle, so a
	// handle dropped without Final or Close can still free its worker.
	hd := &handle{s}
	runtime.AddCleanup(hd, func(s *stream) { s.pin.End(errStreamClosed) }, s)
	return hd, nil
}

// handle is the caller's side of a stream. Its methods are its own, not
// promoted from the stream: the cleanup that ends a dropped stream is tied to
// the handle, so each call keeps the handle reachable until its request is
// answered, even when the caller's last use of the handle is that call (a
// promoted method would leave only the stream, and a collection between
// loading it and the worker answering would close the session under the
// call).
type handle struct{ *stream }

var _ offload.HashSession = (*handle)(nil)

// Update feeds data, at most Info().MaxInline bytes, to the digest. A longer
// data fails with offload.ErrInvalid and, like every failure, ends the
// stream.
func (h *handle) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	f := h.stream.Update(ctx, data)
	h.keep(f)
	return f
}

// Final ends the digest and returns it.
func (h *handle) Final(ctx context.Context) *offload.Future[[]byte] {
	f := h.stream.Final(ctx)
	h.keep(f)
	return f
}

// Close abandons an unfinished stream: the worker ends the token's digest
// and goes back to the pool. It does not wait for the token, and does
// nothing on a finished stream or a second time.
func (h *handle) Close() error {
	err := h.stream.Close()
	runtime.KeepAlive(h)
	return err
}

// keep keeps h reachable until f resolves: the hook is held by f, which the
// request (in the stream's channel or with the worker) holds, and is dropped
// when f resolves.
func (h *handle) keep(f interface{ OnResolve(func()) }) {
	f.OnResolve(func() { runtime.KeepAlive(h) })
}

// stream is a hash session: the caller's side of a stream pinned to a
// worker.
type stream struct {
	e   *Engine
	h   crypto.Hash
	pin *exec.Stream[*worker]

	mu   sync.Mutex
	prev offload.Awaitable // the caller's last Update or Final

	// active says the token holds a digest operation on the pinned
	// worker's session. Only the pinned worker touches it.
	active bool
}

// over returns why the stream is over, or nil.
func (s *stream) over() error { return s.pin.Err() }

// end ends the stream with err unless it is over already, and returns the
// error it is over with.
func (s *stream) end(err error) error {
	s.pin.End(err)
	return s.pin.Err()
}

// send hands a step to the pinned worker, or fails it when a call overlaps
// the caller's last one, which ends the stream.
func send[T any](s *stream, ctx context.Context, step exec.Step[*worker, T]) *offload.Future[T] {
	if s.e.sendHook != nil {
		s.e.sendHook(s)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev != nil && s.prev.Err() == offload.ErrNotReady {
		err := s.end(fmt.Errorf("pkcs11: hash session called again before the last call resolved: %w", offload.ErrInvalid))
		return offload.Failed[T](offload.Wrap(name, offload.OpHash, err))
	}
	f := exec.Do(s.pin, ctx, step)
	s.prev = f
	return f
}

// Update feeds data, at most Info().MaxInline bytes, to the digest. A longer
// data fails with offload.ErrInvalid and, like every failure, ends the
// stream.
func (s *stream) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	switch {
	case ctx == nil:
		return send(s, ctx, exec.Step[*worker, struct{}]{}) // refused, and the stream ended, by the executor
	case len(data) > s.e.cfg.MaxInline:
		err := s.end(fmt.Errorf("pkcs11: %d bytes in one hash update, more than MaxInline %d: %w", len(data), s.e.cfg.MaxInline, offload.ErrInvalid))
		return offload.Failed[struct{}](offload.Wrap(name, offload.OpHash, err))
	case len(data) == 0 && ctx.Err() == nil:
		if err := s.over(); err != nil {
			return offload.Failed[struct{}](offload.Wrap(name, offload.OpHash, err))
		}
		return offload.Resolved(struct{}{}, nil)
	}
	data = bytes.Clone(data)
	return send(s, ctx, exec.Step[*worker, struct{}]{Work: func(w *worker) (struct{}, error) {
		if s.e.updateHook != nil {
			s.e.updateHook()
		}
		if err := w.p.DigestUpdate(w.sh, data); err != nil {
			s.active = false // a failed update ends the operation
			return struct{}{}, ckErr("C_DigestUpdate", err)
		}
		return struct{}{}, nil
	}})
}

// Final ends the digest and returns it.
func (s *stream) Final(ctx context.Context) *offload.Future[[]byte] {
	return send(s, ctx, exec.Step[*worker, []byte]{Last: true, Work: func(w *worker) ([]byte, error) {
		sum, err := w.p.DigestFinal(w.sh)
		s.active = false // ended by C_DigestFinal, whatever it returned
		if err != nil {
			return nil, ckErr("C_DigestFinal", err)
		}
		if len(sum) != s.h.Size() {
			return nil, fmt.Errorf("pkcs11: C_DigestFinal returned %d bytes for %v", len(sum), s.h)
		}
		return sum, nil
	}})
}

// Close abandons an unfinished stream: the worker ends the token's digest
// and goes back to the pool. It does not wait for the token, and does
// nothing on a finished stream or a second time.
func (s *stream) Close() error {
	s.pin.End(errStreamClosed)
	return nil
}

// errFinished marks a stream that Final ended well; calls after it fail
// with it.
var errFinished = fmt.Errorf("pkcs11: hash session already finished: %w", offload.ErrInvalid)

// cleanup runs on the pinned worker when the stream is over, inside the
// module's gate (the executor skips it when the module was re-initialised
// under the session, which took the digest with it): it ends the token's
// digest operation if one is still active, so the session can serve other
// operations.
func (s *stream) cleanup(w *worker) {
	if s.active {
		s.active = false
		s.endOp(w)
	}
}

// endOp ends the token's digest operation on w's session: C_DigestFinal
// into a buffer that is thrown away (which SoftHSM and every conforming
// token accept at any point of a digest).
func (s *stream) endOp(w *worker) {
	e := s.e
	_, err := w.p.DigestFinal(w.sh)
	code, ok := ckCode(err)
	if !ok || code == pkcs11.CKR_OPERATION_NOT_INITIALIZED {
		return
	}
	if gone(code) {
		// The session went with the operation: the worker's next operation
		// recovers it first (device.Prepare), outside the executor's gate,
		// where a recovery that re-initialises the module may wait for
		// every worker to leave the module.
		if code != pkcs11.CKR_USER_NOT_LOGGED_IN || e.login {
			w.broken = true
		}
		return
	}
	// The token refused to end the operation: a fresh session is the only
	// way to be sure the next operation finds none active. The worker's
	// next operation opens it (device.Prepare), outside the gate, as for a
	// lost session.
	w.reset = true
}
