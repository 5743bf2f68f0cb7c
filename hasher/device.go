package hasher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/offcrypt/offcrypt/offload"
)

// errSummed is the error of a Write or Sum after Sum on an engine that keeps
// the state on the device.
var errSummed = fmt.Errorf("hasher: the device finished this hash at Sum; Reset to start again: %w", errors.ErrUnsupported)

// device holds the open hash session of a Hash on an engine that keeps the
// state on the device. It is apart from the Hash so that a cleanup attached
// to the Hash can close it.
type device struct {
	mu sync.Mutex
	hs offload.HashSession
}

// close closes the session, if one is open. It does not wait for the
// device.
func (d *device) close() {
	d.mu.Lock()
	hs := d.hs
	d.hs = nil
	d.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// open returns the open session, opening one if there is none. h.mu is held.
func (h *Hash) open(ctx context.Context) (offload.HashSession, error) {
	h.dev.mu.Lock()
	defer h.dev.mu.Unlock()
	if h.dev.hs != nil {
		return h.dev.hs, nil
	}
	hs, err := h.sess.HashSession(ctx, h.hash)
	if err != nil {
		return nil, fmt.Errorf("hasher: %w", err)
	}
	h.dev.hs = hs
	return hs, nil
}

// fail records err, after which the device's computation is gone: the
// session is closed and the unsent bytes dropped (an abandoned request may
// still read the buffer). h.mu is held.
func (h *Hash) fail(err error) error {
	h.err = err
	h.dev.close()
	h.pend = nil
	return err
}

// update sends data in one Update and waits for it; a failure is recorded.
func (h *Hash) update(ctx context.Context, hs offload.HashSession, data []byte) error {
	if _, err := hs.Update(ctx, data).Wait(ctx); err != nil {
		return h.fail(fmt.Errorf("hasher: %w", err))
	}
	return nil
}

// writeDevice absorbs p on an engine that keeps the state on the device:
// bytes gather in h.pend and go out in Updates of h.chunk (MaxInline)
// bytes. A failure to open the session changes nothing; a failed Update is
// recorded, since the device's computation is gone. h.mu is held.
func (h *Hash) writeDevice(ctx context.Context, p []byte) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(h.pend)+len(p) < h.chunk {
		h.pend = append(h.pend, p...) // no request
		return nil
	}
	hs, err := h.open(ctx)
	if err != nil {
		return err
	}
	if len(h.pend) > 0 {
		need := h.chunk - len(h.pend)
		h.pend = append(h.pend, p[:need]...)
		if err := h.update(ctx, hs, h.pend); err != nil {
			return err
		}
		h.pend = h.pend[:0]
		p = p[need:]
	}
	for len(p) >= h.chunk {
		if err := h.update(ctx, hs, p[:h.chunk]); err != nil {
			return err
		}
		p = p[h.chunk:]
	}
	if h.pend == nil {
		h.pend = make([]byte, 0, h.chunk)
	}
	h.pend = append(h.pend, p...)
	return nil
}

// sumDevice sends what is left and finishes the device's computation. From
// then on the Hash refuses Writes and Sums until Reset. h.mu is held.
func (h *Hash) sumDevice(ctx context.Context, b []byte) ([]byte, error) {
	hs, err := h.open(ctx)
	if err != nil {
		return nil, err
	}
	if len(h.pend) > 0 {
		if err := h.update(ctx, hs, h.pend); err != nil {
			return nil, err
		}
		h.pend = h.pend[:0]
	}
	sum, err := hs.Final(ctx).Wait(ctx)
	if err != nil {
		return nil, h.fail(fmt.Errorf("hasher: %w", err))
	}
	if len(sum) != h.size {
		return nil, h.fail(fmt.Errorf("hasher: engine %q: %w: %v digest of %d bytes", h.eng.Info().Name, offload.ErrInvalid, h.hash, len(sum)))
	}
	h.fail(errSummed) // the session is over: nothing more can be added
	return append(b, sum...), nil
}

// digestDevice is digest on an engine that keeps the state on the device:
// while Update k is with the device, chunk k+1 is read into the other
// buffer; a buffer is reused only after its Update has resolved. The
// session is closed whatever happens.
func (h *Hash) digestDevice(ctx context.Context, r io.Reader) ([]byte, error) {
	defer h.dev.close()
	hs, err := h.open(ctx)
	if err != nil {
		return nil, err
	}
	bufs := [2][]byte{make([]byte, h.chunk), make([]byte, h.chunk)}
	var pending *offload.Future[struct{}]
	for i := 0; ; i ^= 1 {
		n, rerr := io.ReadFull(r, bufs[i])
		if pending != nil {
			if _, err := pending.Wait(ctx); err != nil {
				return nil, h.fail(fmt.Errorf("hasher: %w", err))
			}
			pending = nil
		}
		switch {
		case rerr == nil:
			pending = hs.Update(ctx, bufs[i])
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			h.pend = bufs[i][:n]
			return h.sumDevice(ctx, nil)
		default:
			return nil, fmt.Errorf("hasher: reading the stream: %w", rerr)
		}
	}
}
