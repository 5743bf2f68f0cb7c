package tpm

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"runtime"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/offload"
)

// errSessionClosed ends a hash session its caller closed before Final, and
// errSessionFinished one that Final ended well.
var (
	errSessionClosed   = fmt.Errorf("tpm: hash session closed before Final: %w", offload.ErrClosed)
	errSessionFinished = fmt.Errorf("tpm: hash session already finished: %w", offload.ErrInvalid)
)

// HashSession starts a TPM hash sequence (TPM2_HashSequenceStart) for h,
// one of the hashes Info claims (otherwise an error wrapping
// offload.ErrUnsupported), once an in-flight slot is had; ctx bounds only
// that wait.
//
// The session is a stream pinned to one of the engine's workers, which
// sends its Updates (TPM2_SequenceUpdate, 1,024 bytes per command) and its
// Final (TPM2_SequenceComplete) in order. Between them the TPM serves
// everyone else: the sequence is moved out of its slot when another object
// needs one, and back in for the next Update. A session holds its slot and
// its worker until Final, a failure or Close; one that is garbage collected
// unfinished is closed, whenever the collector gets to it. A TPM restart
// loses the sequence: the session fails with an error matching
// ErrObjectLost, and the hash must start again.
func (e *Engine) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	const op = offload.OpHash
	a, ok := offload.HashAlgorithm(h)
	if !ok || !e.info.Supports(a) {
		return nil, offload.Wrap(name, op, fmt.Errorf("tpm: hash session %v: %w", h, offload.ErrUnsupported))
	}
	if e.closed.Load() {
		return nil, offload.Wrap(name, op, errClosed)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, offload.Wrap(name, op, err)
	}
	s := &sequence{e: e, life: contextWith(e.life, ctx)}
	var err error
	s.pin, err = exec.Pin(e.x, ctx, exec.PinSpec[*Device]{Kind: op, Cleanup: s.cleanup, Finished: errSessionFinished})
	if err != nil {
		return nil, err
	}
	// The sequence starts on the pinned worker, as the stream's first step:
	// its failure ends the stream, and the caller's next call reports it.
	exec.Do(s.pin, context.Background(), exec.Step[*Device, struct{}]{Repeat: true,
		Work: func(d *Device) (struct{}, error) {
			seq, err := d.StartHash(s.life, h)
			s.seq = seq
			return struct{}{}, err
		}})
	// The worker holds s; the caller holds only the handle, so a handle
	// dropped unfinished can still free its worker.
	hd := &hashHandle{s}
	runtime.AddCleanup(hd, func(s *sequence) { s.pin.End(errSessionClosed) }, s)
	return hd, nil
}

// sequence is the stream of one hash session.
type sequence struct {
	e    *Engine
	life context.Context
	pin  *exec.Stream[*Device]
	seq  *Sequence // only the pinned worker touches it
}

// cleanup runs on the pinned worker, under the gate, when the stream is
// over: it flushes a sequence Final did not finish.
func (s *sequence) cleanup(d *Device) {
	if s.seq != nil {
		_ = d.AbortHash(s.life, s.seq)
		s.seq = nil
	}
}

// hashHandle is the caller's side of a sequence; each call keeps it
// reachable until the call's future resolves, so the cleanup that closes a
// dropped session cannot run under a call.
type hashHandle struct{ s *sequence }

var _ offload.HashSession = (*hashHandle)(nil)

// Update feeds data, at most Info().MaxInline bytes, to the sequence. A
// longer data fails with offload.ErrInvalid and, like every failure, ends
// the session.
func (h *hashHandle) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	s := h.s
	if ctx == nil {
		ctx = context.Background()
	}
	if len(data) > s.e.info.MaxInline {
		s.pin.End(fmt.Errorf("tpm: %d bytes in one hash update, more than MaxInline %d: %w", len(data), s.e.info.MaxInline, offload.ErrInvalid))
		return offload.Failed[struct{}](offload.Wrap(name, offload.OpHash, s.pin.Err()))
	}
	data = bytes.Clone(data)
	return keep(h, exec.Do(s.pin, ctx, exec.Step[*Device, struct{}]{Work: func(d *Device) (struct{}, error) {
		if s.seq == nil {
			return struct{}{}, fmt.Errorf("tpm: hash sequence not started: %w", offload.ErrInvalid)
		}
		return struct{}{}, d.UpdateHash(s.life, s.seq, data)
	}}))
}

// Final completes the sequence and returns the digest.
func (h *hashHandle) Final(ctx context.Context) *offload.Future[[]byte] {
	s := h.s
	if ctx == nil {
		ctx = context.Background()
	}
	return keep(h, exec.Do(s.pin, ctx, exec.Step[*Device, []byte]{Last: true, Work: func(d *Device) ([]byte, error) {
		if s.seq == nil {
			return nil, fmt.Errorf("tpm: hash sequence not started: %w", offload.ErrInvalid)
		}
		sum, err := d.FinishHash(s.life, s.seq, nil)
		if err == nil {
			s.seq = nil // SequenceComplete flushed it
		}
		return sum, err
	}}))
}

// Close abandons an unfinished session: the worker flushes the sequence
// and goes back to the pool. It does not wait for the TPM and does nothing
// on a finished session.
func (h *hashHandle) Close() error {
	h.s.pin.End(errSessionClosed)
	runtime.KeepAlive(h)
	return nil
}

// keep keeps h reachable until f resolves.
func keep[T any](h *hashHandle, f *offload.Future[T]) *offload.Future[T] {
	f.OnResolve(func() { runtime.KeepAlive(h) })
	return f
}
