//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
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
// The session is a job like any other, queued for the engine's workers. The
// worker that takes it is pinned to it: it calls C_DigestInit on its own
// PKCS #11 session and then serves only this stream's Update (C_DigestUpdate)
// and Final (C_DigestFinal) until Final, a failure or Close, and then goes
// back to the shared queue. No goroutine is started per stream. A stream
// therefore holds one slot and one worker for as long as it is open: callers
// must call Final or Close (a session that is garbage collected unfinished
// is closed, but only whenever the collector gets to it).
//
// A context that ends during Update or Final resolves that future at once
// with its error and ends the stream; the worker finishes the C call, ends
// the token's digest operation and frees itself. A session lost underneath
// the stream fails it (the running digest is gone with the session; nothing
// is retried) and the worker recovers its session for later jobs. Close of
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
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return nil, wrap(context.Cause(ctx))
	}
	probe, err := e.brk.admit()
	if err != nil {
		return nil, wrap(err)
	}
	if err := e.limit.Acquire(ctx); err != nil {
		return nil, wrap(err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		e.limit.Release()
		return nil, wrap(errClosed)
	}
	e.ops.Add(1)
	s := &stream{
		e: e, h: h, mech: m, probe: probe, wrap: wrap,
		reqs: make(chan *streamReq, 1),
		quit: make(chan struct{}),
	}
	s.start = e.stats.Start(op)
	e.jobs <- s // never blocks: the channel holds as many jobs as there are slots
	// The pinned worker holds s; the caller holds only the handle, so a
	// handle dropped without Final or Close can still free its worker.
	hd := &handle{s}
	runtime.AddCleanup(hd, func(s *stream) { s.end(errStreamClosed) }, s)
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

// stream is a hash session: the caller's handle and the job that pins a
// worker to it.
type stream struct {
	e     *Engine
	h     crypto.Hash
	mech  uint
	probe bool
	wrap  func(error) error
	start time.Time

	reqs chan *streamReq // to the pinned worker; one at a time
	quit chan struct{}   // closed when the stream is over

	mu  sync.Mutex
	err error // why the stream is over; nil while it is open

	// The request that ended the stream and its outcome, resolved by
	// finish. Only the pinned worker touches them.
	last    *streamReq
	lastSum []byte
	lastErr error
}

// streamReq is one Update (final false) or Final.
type streamReq struct {
	data  []byte
	final bool
	upd   offload.Promise[struct{}]
	sum   offload.Promise[[]byte]
	stop  func() bool
}

// pending reports whether the caller still waits for r.
func (r *streamReq) pending() bool {
	if r.final {
		return r.sum.Pending()
	}
	return r.upd.Pending()
}

// resolve delivers r's outcome, unless the caller's context ended first.
func (r *streamReq) resolve(sum []byte, err error) {
	if r.stop != nil {
		r.stop()
	}
	if r.final {
		r.sum.Resolve(sum, err)
	} else {
		r.upd.Resolve(struct{}{}, err)
	}
}

// end marks the stream over with err, unless it already is, and wakes the
// worker. It reports whether this call ended it.
func (s *stream) end(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.err = err
	close(s.quit)
	return true
}

// over returns why the stream is over, or nil.
func (s *stream) over() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// send hands r to the worker, or fails it when the stream is over or a call
// overlaps another.
func (s *stream) send(ctx context.Context, r *streamReq) {
	if s.e.sendHook != nil {
		s.e.sendHook(s)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		r.resolve(nil, s.wrap(s.err))
		return
	}
	if ctx.Done() != nil {
		// Set before r reaches the worker, which reads r.stop. The
		// function takes s.mu in end, so it waits for send to return.
		r.stop = context.AfterFunc(ctx, func() {
			err := context.Cause(ctx)
			if r.final {
				r.sum.Resolve(nil, s.wrap(err))
			} else {
				r.upd.Resolve(struct{}{}, s.wrap(err))
			}
			s.end(err)
		})
	}
	select {
	case s.reqs <- r:
	default:
		err := fmt.Errorf("pkcs11: hash session called again before the last call resolved: %w", offload.ErrInvalid)
		s.err = err
		close(s.quit)
		r.resolve(nil, s.wrap(err))
	}
}

// Update feeds data, at most Info().MaxInline bytes, to the digest. A longer
// data fails with offload.ErrInvalid and, like every failure, ends the
// stream.
func (s *stream) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	if ctx == nil {
		ctx = context.Background()
	}
	r := &streamReq{upd: offload.NewPromise[struct{}]()}
	f := r.upd.Future()
	switch {
	case len(data) > s.e.cfg.MaxInline:
		err := fmt.Errorf("pkcs11: %d bytes in one hash update, more than MaxInline %d: %w", len(data), s.e.cfg.MaxInline, offload.ErrInvalid)
		if !s.end(err) {
			err = s.over()
		}
		return offload.Failed[struct{}](s.wrap(err))
	case ctx.Err() != nil:
		err := context.Cause(ctx)
		if !s.end(err) {
			err = s.over()
		}
		return offload.Failed[struct{}](s.wrap(err))
	case len(data) == 0:
		if err := s.over(); err != nil {
			return offload.Failed[struct{}](s.wrap(err))
		}
		return offload.Resolved(struct{}{}, nil)
	}
	r.data = bytes.Clone(data)
	s.send(ctx, r)
	return f
}

// Final ends the digest and returns it.
func (s *stream) Final(ctx context.Context) *offload.Future[[]byte] {
	if ctx == nil {
		ctx = context.Background()
	}
	r := &streamReq{final: true, sum: offload.NewPromise[[]byte]()}
	if ctx.Err() != nil {
		err := context.Cause(ctx)
		if !s.end(err) {
			err = s.over()
		}
		return offload.Failed[[]byte](s.wrap(err))
	}
	s.send(ctx, r)
	return r.sum.Future()
}

// Close abandons an unfinished stream: the worker ends the token's digest
// and goes back to the pool. It does not wait for the token, and does
// nothing on a finished stream or a second time.
func (s *stream) Close() error {
	s.end(errStreamClosed)
	return nil
}

// abort fails a stream the engine will not run (it was closed).
func (s *stream) abort(err error) {
	s.end(err)
	s.finish()
}

// run pins w to the stream until it is over.
func (s *stream) run(w *worker) {
	defer s.finish()
	if s.over() != nil {
		return // closed before a worker took it: the token never saw it
	}
	mechs := []*pkcs11.Mechanism{pkcs11.NewMechanism(s.mech, nil)}
	_, err := attempt(s.e, w, s.probe, true, func() bool { return s.over() == nil }, func(w *worker) (struct{}, error) {
		return struct{}{}, ckErr("C_DigestInit", w.p.DigestInit(w.sh, mechs))
	})
	if err != nil {
		s.end(err)
		return
	}
	active := true // the token holds a digest operation on w's session
	defer func() {
		if active {
			s.endOp(w)
		}
	}()
	for {
		var r *streamReq
		select {
		case r = <-s.reqs:
		case <-s.quit:
			return
		case <-s.e.rec.ctx.Done(): // the engine is closing
			s.end(errClosed)
			return
		}
		if !r.pending() || s.over() != nil {
			s.end(context.Canceled) // nothing when already over
			s.deliver(r, nil, s.over())
			return
		}
		if r.final {
			var sum []byte
			err := s.call(w, func() (err error) {
				sum, err = w.p.DigestFinal(w.sh)
				return ckErr("C_DigestFinal", err)
			})
			active = false // ended by C_DigestFinal, whatever it returned
			if err == nil && len(sum) != s.h.Size() {
				err = fmt.Errorf("pkcs11: C_DigestFinal returned %d bytes for %v", len(sum), s.h)
			}
			s.lost(w, err)
			if err == nil {
				s.end(errFinished)
				s.deliver(r, sum, nil)
				return
			}
			s.end(err)
			s.deliver(r, nil, err)
			return
		}
		if s.e.updateHook != nil {
			s.e.updateHook()
		}
		if err := s.call(w, func() error { return ckErr("C_DigestUpdate", w.p.DigestUpdate(w.sh, r.data)) }); err != nil {
			active = false // a failed update ends the operation
			s.lost(w, err)
			s.end(err)
			s.deliver(r, nil, err)
			return
		}
		r.resolve(nil, nil)
	}
}

// call runs fn, a call on w's session, inside the module's gate, unless the
// module was re-initialised since the session was opened: the digest went
// with the session, and call fails with errDigestLost without touching the
// handle (the module may have given its number to another session).
func (s *stream) call(w *worker, fn func() error) error {
	if s.e.mod.enter() != w.gen {
		s.e.mod.leave()
		return errDigestLost
	}
	defer s.e.mod.leave()
	return fn()
}

// errDigestLost fails a hash session whose PKCS #11 session died with the
// module's life (another worker re-initialised the module).
var errDigestLost = errors.New("pkcs11: the module was re-initialised under the hash session: its digest is gone")

// deliver keeps r's outcome for finish, which resolves it after the slot is
// free, so a caller that sees the result sees the slot freed too.
func (s *stream) deliver(r *streamReq, sum []byte, err error) {
	s.last, s.lastSum, s.lastErr = r, sum, err
}

// errFinished marks a stream that Final ended well; calls after it fail
// with it.
var errFinished = fmt.Errorf("pkcs11: hash session already finished: %w", offload.ErrInvalid)

// lost recovers w's session for later jobs when err says the token lost it.
// The stream itself is not retried: its running digest went with the
// session.
func (s *stream) lost(w *worker, err error) {
	code, ok := ckCode(err)
	if !ok || !(gone(code) && (code != pkcs11.CKR_USER_NOT_LOGGED_IN || s.e.login)) {
		return
	}
	s.e.recoverWorker(w, false, code) // on failure w stays broken; the next job tries again
}

// endOp ends the token's digest operation on w's session so the session can
// serve other jobs: C_DigestFinal into a buffer that is thrown away (which
// SoftHSM and every conforming token accept at any point of a digest).
func (s *stream) endOp(w *worker) {
	err := s.call(w, func() error {
		_, err := w.p.DigestFinal(w.sh)
		return err
	})
	code, ok := ckCode(err)
	if !ok || code == pkcs11.CKR_OPERATION_NOT_INITIALIZED {
		return // errDigestLost among them: the operation died with the session
	}
	if gone(code) {
		s.lost(w, ckErr("C_DigestFinal", err))
		return
	}
	// The token refused to end the operation: a fresh session is the only
	// way to be sure the next job finds none active.
	e := s.e
	e.rec.mu.Lock()
	e.mod.enter()
	rerr := e.reopen(w, true)
	e.mod.leave()
	e.rec.mu.Unlock()
	if rerr != nil {
		w.broken = true
	}
}

// finish settles the stream's slot and counters and fails a request left in
// the channel.
func (s *stream) finish() {
	s.mu.Lock()
	if s.err == nil { // not reached: every way out of run ends the stream
		s.err = errStreamClosed
		close(s.quit)
	}
	outcome := s.err
	select {
	case r := <-s.reqs:
		r.resolve(nil, s.wrap(outcome))
	default:
	}
	s.mu.Unlock()
	if outcome == errFinished {
		outcome = nil
	}
	s.e.stats.Finish(offload.OpHash, s.start, outcome)
	s.e.limit.Release()
	if r := s.last; r != nil {
		err := s.lastErr
		if err != nil {
			err = s.wrap(err)
		}
		r.resolve(s.lastSum, err)
	}
	s.e.ops.Done()
}
