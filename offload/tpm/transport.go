package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/offcrypt/offcrypt/offload"
)

// headerSize is the size of a TPM 2.0 command or response header: tag (2),
// size (4), command or response code (4).
const headerSize = 10

// maxResponse bounds the size a response header may announce. The largest
// TPM 2.0 response is a few kilobytes (TPM_PT_MAX_RESPONSE_SIZE is 4096 on
// swtpm and on the chips in the field); anything far larger is a broken
// stream, not a response.
const maxResponse = 64 << 10

// ErrTransport is matched (errors.Is) by every error that means the TPM
// could not be reached: a connection that closed or timed out mid-command, a
// malformed response frame, a device that cannot be opened. The command's
// fate is unknown, and the connection is no longer usable: the device
// re-dials before its next operation. It wraps offload.ErrUnavailable, so
// callers that know only offload's sentinels see a device that cannot be
// reached now.
var ErrTransport = fmt.Errorf("tpm: transport failed: %w", offload.ErrUnavailable)

// conn is a TPM command stream over a byte stream (a character device, or
// swtpm's data port carrying raw TPM bytes). Send writes one command and
// reads exactly one response, framed by the size in its header, however
// many reads that takes.
//
// Raw bytes on a TCP connection are what swtpm's data port speaks natively
// and what the kernel's /dev/tpm* devices speak, so one framing serves both
// (the simulator framing of go-tpm's tcp transport adds a command prefix and
// a trailing word for the Microsoft simulator's protocol, which swtpm accepts
// but a character device does not).
type conn struct {
	rw  io.ReadWriteCloser
	dl  deadliner // nil when rw has no deadlines (some character devices)
	ctx context.Context
}

// deadliner is the part of net.Conn and *os.File that bounds a blocked read
// or write.
type deadliner interface {
	SetDeadline(time.Time) error
}

func newConn(rw io.ReadWriteCloser) *conn {
	c := &conn{rw: rw, ctx: context.Background()}
	if d, ok := rw.(deadliner); ok {
		c.dl = d
	}
	return c
}

// dialTCP connects to a TPM that speaks raw TPM bytes over TCP (swtpm's
// --server port).
func dialTCP(ctx context.Context, address string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("tpm: dial %s: %w: %w", address, ErrTransport, err)
	}
	return newConn(nc), nil
}

// openDevice opens a TPM character device (/dev/tpmrm0, /dev/tpm0).
func openDevice(path string) (*conn, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("tpm: open %s: %w: %w", path, ErrTransport, err)
	}
	return newConn(f), nil
}

// bind makes ctx bound the commands sent until the next bind: its deadline
// becomes the stream's deadline, and its cancellation interrupts a blocked
// read or write. The returned function undoes it.
func (c *conn) bind(ctx context.Context) (unbind func()) {
	if c.dl == nil {
		return func() {}
	}
	c.ctx = ctx
	dl, _ := ctx.Deadline()
	_ = c.dl.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.dl.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		c.ctx = context.Background()
		_ = c.dl.SetDeadline(time.Time{})
	}
}

// Send implements transport.TPM.
func (c *conn) Send(cmd []byte) ([]byte, error) {
	if _, err := c.rw.Write(cmd); err != nil {
		return nil, c.fail("write", err)
	}
	var hdr [headerSize]byte
	if _, err := io.ReadFull(c.rw, hdr[:]); err != nil {
		return nil, c.fail("read response header", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerSize || size > maxResponse {
		return nil, fmt.Errorf("tpm: response header announces %d bytes: %w", size, ErrTransport)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(c.rw, rsp[headerSize:]); err != nil {
		return nil, c.fail("read response body", err)
	}
	return rsp, nil
}

// fail wraps an I/O error, naming the context's error when that is what cut
// the stream.
func (c *conn) fail(what string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if c.ctx.Err() != nil {
		return fmt.Errorf("tpm: %s: %w: %w", what, ErrTransport, context.Cause(c.ctx))
	}
	// The stream's deadline is the context's: it may fire a moment before
	// the context's own timer does.
	if dl, ok := c.ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("tpm: %s: %w: %w", what, ErrTransport, context.DeadlineExceeded)
	}
	return fmt.Errorf("tpm: %s: %w: %w", what, ErrTransport, err)
}

// Close implements io.Closer.
func (c *conn) Close() error { return c.rw.Close() }

// retrier resends a command the TPM answered with TPM_RC_RETRY,
// TPM_RC_YIELDED or TPM_RC_TESTING: the TPM did not execute it (or, for
// YIELDED, asks for it again), so the same bytes are sent again, after a
// pause that grows from nothing to maxPause, at most attempts times in all.
type retrier struct {
	next     transport.TPM
	ctx      context.Context
	attempts int
	maxPause time.Duration
	sleep    func(context.Context, time.Duration) error
}

// errRetriesExhausted is wrapped, with the TPM's last code, when the TPM
// still answers RETRY, YIELDED or TESTING after every attempt.
var errRetriesExhausted = errors.New("tpm: TPM still busy after every retry")

// Send implements transport.TPM.
func (r *retrier) Send(cmd []byte) ([]byte, error) {
	var pause time.Duration
	for attempt := 1; ; attempt++ {
		rsp, err := r.next.Send(cmd)
		if err != nil {
			return nil, err
		}
		rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10]))
		if rc != tpm2.TPMRCRetry && rc != tpm2.TPMRCYielded && rc != tpm2.TPMRCTesting {
			return rsp, nil
		}
		if attempt >= r.attempts {
			return nil, fmt.Errorf("%w (%d attempts): %w", errRetriesExhausted, attempt, rc)
		}
		if err := r.sleep(r.ctx, pause); err != nil {
			return nil, fmt.Errorf("tpm: waiting to retry after %v: %w", rc, err)
		}
		pause = min(max(2*pause, time.Millisecond), r.maxPause)
	}
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
