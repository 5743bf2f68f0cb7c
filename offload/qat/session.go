package qat

import (
	"context"
	"crypto"
	"fmt"
	"sync"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/offload"
)

// HashSession starts a SHA-2 computation in a session on one instance,
// picked round-robin. The session holds one of the engine's session slots
// (as many as the symmetric rings hold) until it is finished or closed; ctx
// bounds the wait for one. Partial blocks stay here: each Update sends the
// whole blocks it completes as one partial packet, in order, and an Update
// that completes none costs no round trip; Final sends the rest as the last
// packet. After any request fails, or is given up by its context, the
// session is over.
func (e *Engine) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return nil, offload.Wrap(Name, offload.OpHash, err)
	}
	alg, ok := offload.HashAlgorithm(h)
	if !ok {
		alg = 0
	}
	if err := e.admit(nil, alg, nil); err != nil {
		return nil, offload.Wrap(Name, offload.OpHash, err)
	}
	if err := e.sessions.Acquire(ctx); err != nil {
		return nil, offload.Wrap(Name, offload.OpHash, err)
	}
	in := e.insts[int(e.next.Add(1))%len(e.insts)]
	s, err := in.dev.newSession(sessionSetup{kind: hashKind, hash: h})
	if err != nil {
		e.sessions.Release()
		return nil, offload.Wrap(Name, offload.OpHash, err)
	}
	return &hashSession{e: e, in: in, s: s, block: h.New().BlockSize()}, nil
}

// errSessionOver fails a request on a session that is over.
var errSessionOver = fmt.Errorf("qat: hash session is over: %w", offload.ErrInvalid)

// hashSession is one SHA-2 computation on the device.
type hashSession struct {
	e     *Engine
	in    *inst
	s     session
	block int

	mu      sync.Mutex
	partial []byte // the bytes after the last whole block sent
	busy    bool   // a packet is on the device
	over    bool
	freed   bool
	last    interface{ Err() error }
}

// begin checks that the session can take a request: not over, and the last
// one succeeded. A failed or abandoned request ends it.
func (h *hashSession) begin() error {
	if h.last != nil && h.last.Err() != nil {
		h.over = true
	}
	if h.over {
		h.free()
		return errSessionOver
	}
	return nil
}

// free removes the session and gives back its slot once no packet is on
// the device. Called with mu held.
func (h *hashSession) free() {
	if h.freed || h.busy {
		return
	}
	h.freed = true
	h.in.dev.removeSession(h.s)
	h.e.sessions.Release()
}

// send submits one packet and returns its future, mapped by result.
func sendPacket[T any](h *hashSession, ctx context.Context, op symOp, result func([]byte) T) *offload.Future[T] {
	h.busy = true
	f := exec.Submit(h.e.sym, ctx, exec.Op[struct{}, T]{Kind: offload.OpHash,
		Start: starter(h.e, ctx, []*inst{h.in}, func(i *inst, done func(T, error)) error {
			return submitOne(i, h.s, op, func(out []byte, err error) {
				h.mu.Lock()
				h.busy = false
				if err != nil || op.final {
					h.over = true
				}
				if h.over {
					h.free()
				}
				h.mu.Unlock()
				if err != nil {
					done(*new(T), err)
					return
				}
				done(result(out), nil)
			})
		}),
	})
	if f.Err() != nil && f.Err() != offload.ErrNotReady {
		// Refused before the device: nothing is in flight.
		h.busy = false
		h.over = true
		h.free()
	}
	h.last = f
	return f
}

// Update feeds data to the computation.
func (h *hashSession) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin(); err != nil {
		return failed[struct{}](h.e.sym, offload.OpHash, err)
	}
	if len(data) > h.e.cfg.MaxInline {
		h.over = true
		h.free()
		return failed[struct{}](h.e.sym, offload.OpHash, fmt.Errorf("qat: %w: %d bytes, more than MaxInline %d", offload.ErrInvalid, len(data), h.e.cfg.MaxInline))
	}
	buf := append(h.partial, data...)
	whole := len(buf) - len(buf)%h.block
	h.partial = append([]byte(nil), buf[whole:]...)
	if whole == 0 {
		h.last = nil
		return offload.Resolved(struct{}{}, nil)
	}
	return sendPacket(h, ctx, symOp{in: buf[:whole]}, func([]byte) struct{} { return struct{}{} })
}

// Final ends the computation and returns the digest.
func (h *hashSession) Final(ctx context.Context) *offload.Future[[]byte] {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin(); err != nil {
		return failed[[]byte](h.e.sym, offload.OpHash, err)
	}
	rest := h.partial
	h.partial = nil
	return sendPacket(h, ctx, symOp{in: rest, final: true}, func(sum []byte) []byte { return sum })
}

// Close abandons the computation. A packet still on the device keeps the
// session until its completion.
func (h *hashSession) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.over = true
	h.free()
	return nil
}
