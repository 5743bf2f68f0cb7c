package tpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/offcrypt/offcrypt/internal/optcheck"
	"github.com/offcrypt/offcrypt/offload"
)

// Config says which TPM to open and how. The zero Config opens /dev/tpmrm0
// (or /dev/tpm0 when there is no resource manager), creates the storage
// root key from the standard ECC P-256 template, and protects commands with
// a salted, encrypted session. Open copies it; later changes have no effect.
type Config struct {
	// Path is a TPM character device: /dev/tpmrm0 (the kernel's resource
	// manager, preferred) or /dev/tpm0.
	Path string

	// Address is the host:port of a TPM that speaks raw TPM 2.0 commands
	// over TCP: swtpm's --server port.
	Address string

	// Simulator opens go-tpm's in-process TPM simulator. It needs cgo;
	// without it Open fails with an error wrapping offload.ErrUnsupported.
	Simulator bool

	// Dial, when set, opens any other byte stream that carries raw TPM 2.0
	// commands and responses. It is called again to reconnect.
	Dial func(ctx context.Context) (io.ReadWriteCloser, error)

	// SRKHandle is the persistent handle (0x81…) of the storage root key.
	// Zero creates it under the owner hierarchy from the standard ECC P-256
	// template (the TCG's, as tpm2-tools and tpm2-openssl do), which yields
	// the same key every time on the same TPM.
	SRKHandle uint32

	// OwnerAuth returns the owner hierarchy's auth value, needed to create
	// the storage root key. Nil means the empty auth value.
	OwnerAuth func(ctx context.Context) ([]byte, error)

	// NoParameterEncryption turns off the salted session: keys are
	// authorized by password and digests, plaintexts and random bytes cross
	// the bus in clear. It exists to measure what the session costs.
	NoParameterEncryption bool

	// FlushStale flushes, at Open, every transient object and loaded
	// session the TPM holds: what a client that crashed left behind on a
	// TPM without a resource manager (swtpm, /dev/tpm0), where it fills the
	// few object slots. Set it only when this process is the TPM's only
	// user.
	FlushStale bool

	// Retries bounds how many times a command the TPM answers with
	// TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING is sent in all.
	// Zero means 32.
	Retries int

	// MaxInFlight is the engine's in-flight limit: how many requests Open's
	// Engine admits at once, the queue in front of the TPM. Zero means
	// DefaultMaxInFlight. A Device alone ignores it.
	MaxInFlight int

	// CommandTimeout bounds one command when the caller's context has no
	// earlier deadline. Zero means 2 minutes (RSA key generation on a
	// discrete TPM takes tens of seconds).
	CommandTimeout time.Duration
}

const (
	defaultRetries        = 32
	defaultCommandTimeout = 2 * time.Minute
	maxRetryPause         = 50 * time.Millisecond
)

// link is one connection to the TPM.
type link interface {
	transport.TPMCloser
	bind(ctx context.Context) (unbind func())
}

// Device is one open TPM: its connection, its storage root key, its salted
// session, and the transient objects (keys, hash sequences) it loaded.
//
// A TPM executes one command at a time, and a Device is one command stream:
// it is NOT safe for concurrent use. Its caller makes one call at a time
// (the Engine's workers take it in turn under a lock).
type Device struct {
	cfg Config
	gen uint64 // connection generation: bumped on every (re)connect

	link    link          // nil while disconnected
	tpm     transport.TPM // link behind the retrier
	retrier *retrier

	srk     *object // the storage root key (transient) or nil when persistent
	srkPers tpm2.TPMHandle
	srkPub  tpm2.TPMTPublic
	srkName tpm2.TPM2BName

	sess *session // nil when NoParameterEncryption

	objects []*object // transient objects this device loaded, for LRU eviction
	// orphans are the handles a lost connection left loaded: flushed by the
	// next connection, so that on a TPM that did not restart (and keeps
	// transient objects across connections, as swtpm does) they do not
	// hold its few slots for ever.
	orphans []tpm2.TPMHandle
	clock   uint64
	closed  bool

	// cmdCtx bounds the command being sent; see run.
	cmdCtx context.Context
}

// OpenDevice connects to the TPM cfg names, finds or creates the storage root key
// and starts the session. Nothing is left on the TPM if it fails.
func OpenDevice(ctx context.Context, cfg Config) (*Device, error) {
	if err := optcheck.Check("tpm",
		optcheck.Count("Config.MaxInFlight", cfg.MaxInFlight),
		optcheck.Int("Config.Retries", cfg.Retries),
		optcheck.Duration("Config.CommandTimeout", cfg.CommandTimeout),
	); err != nil {
		return nil, err
	}
	if cfg.Retries == 0 {
		cfg.Retries = defaultRetries
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	n := 0
	for _, set := range []bool{cfg.Path != "", cfg.Address != "", cfg.Simulator, cfg.Dial != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("tpm: Config sets more than one of Path, Address, Simulator and Dial: %w", offload.ErrInvalid)
	}
	if cfg.SRKHandle != 0 && tpm2.TPMHandle(cfg.SRKHandle)>>24 != 0x81 {
		return nil, fmt.Errorf("tpm: SRKHandle %#x is not a persistent handle (0x81…): %w", cfg.SRKHandle, offload.ErrInvalid)
	}
	d := &Device{cfg: cfg, cmdCtx: context.Background()}
	d.retrier = &retrier{attempts: cfg.Retries, maxPause: maxRetryPause, sleep: sleepCtx, ctx: context.Background()}
	if err := d.connect(ctx); err != nil {
		d.disconnect()
		return nil, err
	}
	return d, nil
}

// dial opens the configured transport.
func (d *Device) dial(ctx context.Context) (link, error) {
	switch {
	case d.cfg.Address != "":
		return dialTCP(ctx, d.cfg.Address)
	case d.cfg.Simulator:
		return openSimulator()
	case d.cfg.Dial != nil:
		rw, err := d.cfg.Dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("tpm: dial: %w: %w", ErrTransport, err)
		}
		return newConn(rw), nil
	case d.cfg.Path != "":
		return openDevice(d.cfg.Path)
	}
	c, err := openDevice("/dev/tpmrm0")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return c, err
	}
	return openDevice("/dev/tpm0")
}

// connect dials, flushes stale objects if asked, and sets up the SRK and the
// session. Objects loaded on an earlier connection are reloaded on demand.
func (d *Device) connect(ctx context.Context) error {
	l, err := d.dial(ctx)
	if err != nil {
		return err
	}
	d.gen++
	d.link = l
	d.retrier.next = l
	d.tpm = d.retrier
	for _, o := range d.objects {
		o.handle = 0 // the handles of the last connection mean nothing now
	}
	if err := d.startup(ctx); err != nil {
		return err
	}
	for _, h := range d.orphans {
		// Gone already when the TPM restarted: the error says so.
		_, err := tpm2.FlushContext{FlushHandle: h}.Execute(d.tpm)
		if errors.Is(err, ErrTransport) {
			return err
		}
	}
	d.orphans = nil
	if d.cfg.FlushStale {
		if err := d.flushStale(ctx); err != nil {
			return err
		}
	}
	if err := d.setupSRK(ctx); err != nil {
		return err
	}
	if !d.cfg.NoParameterEncryption {
		h, err := d.srkHandle(ctx)
		if err != nil {
			return err
		}
		err = d.run(ctx, func(t transport.TPM) (err error) {
			d.sess, err = startSession(t, h, &d.srkPub)
			return err
		})
		d.unpin(d.srk)
		if err != nil {
			return d.slotError("starting the session", err)
		}
	}
	return nil
}

// startup sends TPM2_Startup(CLEAR) to a TPM that has not been started (a
// fresh simulator), and does nothing to one that has.
func (d *Device) startup(ctx context.Context) error {
	err := d.run(ctx, func(t transport.TPM) error {
		_, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 1}.Execute(t)
		return err
	})
	if !errors.Is(err, tpm2.TPMRCInitialize) {
		return wrapRC("GetCapability", err)
	}
	return d.run(ctx, func(t transport.TPM) error {
		_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(t)
		return wrapRC("Startup", err)
	})
}

// flushStale flushes every transient object and loaded session on the TPM.
func (d *Device) flushStale(ctx context.Context) error {
	for _, first := range []tpm2.TPMHandle{0x80000000, 0x02000000, 0x03000000} {
		handles, err := d.handles(ctx, first)
		if err != nil {
			return err
		}
		for _, h := range handles {
			if err := d.flush(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// handles lists the TPM's handles of the range that starts at first.
func (d *Device) handles(ctx context.Context, first tpm2.TPMHandle) ([]tpm2.TPMHandle, error) {
	var out []tpm2.TPMHandle
	for {
		var rsp *tpm2.GetCapabilityResponse
		err := d.run(ctx, func(t transport.TPM) (err error) {
			rsp, err = tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(first), PropertyCount: 64}.Execute(t)
			return err
		})
		if err != nil {
			return nil, wrapRC("GetCapability(handles)", err)
		}
		hl, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return nil, fmt.Errorf("tpm: GetCapability(handles): %w", err)
		}
		for _, h := range hl.Handle {
			if h>>24 != first>>24 {
				return out, nil
			}
			out = append(out, h)
		}
		if !rsp.MoreData || len(hl.Handle) == 0 {
			return out, nil
		}
		first = hl.Handle[len(hl.Handle)-1] + 1
	}
}

// run sends the commands of fn on the current connection, bounded by ctx
// (and CommandTimeout). A transport failure drops the connection, so the
// next call reconnects.
func (d *Device) run(ctx context.Context, fn func(t transport.TPM) error) error {
	if d.closed {
		return fmt.Errorf("tpm: device closed: %w", offload.ErrClosed)
	}
	if d.link == nil {
		// Lost during this operation: its handles and loaded objects
		// belong to the connection that is gone, so it fails here, and the
		// next operation reconnects (ready).
		return fmt.Errorf("tpm: connection lost: %w", ErrTransport)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.cfg.CommandTimeout)
		defer cancel()
	}
	unbind := d.link.bind(ctx)
	d.retrier.ctx = ctx
	err := fn(d.tpm)
	d.retrier.ctx = context.Background()
	unbind()
	if errors.Is(err, ErrTransport) || errors.Is(err, errResponseMAC) {
		// The command's fate is unknown and the stream may be out of
		// step: this connection is done.
		d.disconnect()
	}
	return err
}

// ready reconnects when the connection was lost, at the start of an
// operation: never in the middle of one, whose handles would then name
// objects of the old connection.
func (d *Device) ready(ctx context.Context) error {
	if d.closed {
		return fmt.Errorf("tpm: device closed: %w", offload.ErrClosed)
	}
	if d.link == nil {
		return d.reconnect(ctx)
	}
	return nil
}

// reconnect re-dials after a lost connection (a TPM restart, a broken
// stream): it re-creates the SRK and the session; keys are reloaded when next
// used, and hash sequences of the old connection are lost.
func (d *Device) reconnect(ctx context.Context) error {
	d.disconnect()
	if err := d.connect(ctx); err != nil {
		d.disconnect()
		return err
	}
	return nil
}

// disconnect closes the connection without talking to the TPM; what it
// had loaded is flushed by the next connection.
func (d *Device) disconnect() {
	if d.link != nil {
		_ = d.link.Close()
		for _, o := range d.objects {
			if o.handle != 0 && o.gen == d.gen {
				d.orphans = append(d.orphans, o.handle)
			}
		}
		if d.srk != nil && d.srk.handle != 0 && !slices.Contains(d.orphans, d.srk.handle) {
			d.orphans = append(d.orphans, d.srk.handle)
		}
		if d.sess != nil && d.sess.handle != 0 {
			d.orphans = append(d.orphans, d.sess.handle)
		}
	}
	d.link, d.tpm, d.sess = nil, nil, nil
	for _, o := range d.objects {
		o.handle = 0
	}
	if d.srk != nil {
		d.srk.handle = 0
	}
}

// Reconnect drops the connection and opens a new one, as after a TPM
// restart; a broken connection is re-dialled by the next call anyway.
func (d *Device) Reconnect(ctx context.Context) error {
	if d.closed {
		return fmt.Errorf("tpm: device closed: %w", offload.ErrClosed)
	}
	return d.reconnect(ctx)
}

// Close flushes the session and every transient object the device loaded,
// and closes the connection. It is safe to call more than once.
func (d *Device) Close() error {
	if d.closed {
		return nil
	}
	var errs []error
	if d.link != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, o := range d.objects {
			if o.handle != 0 && o.gen == d.gen && d.link != nil {
				errs = append(errs, d.flush(ctx, o.handle))
			}
			o.handle = 0
		}
		if d.link != nil && d.sess != nil && d.sess.handle != 0 {
			errs = append(errs, d.flush(ctx, d.sess.handle))
		}
		if d.link != nil {
			errs = append(errs, d.link.Close())
		}
	}
	d.objects = nil
	d.link, d.tpm, d.sess = nil, nil, nil
	d.closed = true
	return errors.Join(errs...)
}

// flush flushes one handle.
func (d *Device) flush(ctx context.Context, h tpm2.TPMHandle) error {
	return d.run(ctx, func(t transport.TPM) error {
		_, err := tpm2.FlushContext{FlushHandle: h}.Execute(t)
		return wrapRC("FlushContext", err)
	})
}

// authFor returns the session that authorizes an entity with auth, its
// first command parameter encrypted when encIn, its first response
// parameter when encOut; a password session when parameter encryption is
// off.
func (d *Device) authFor(auth []byte, encIn, encOut bool) tpm2.Session {
	if d.sess == nil {
		return tpm2.PasswordAuth(auth)
	}
	return d.sess.use(auth, true, encIn, encOut)
}

// encryptOnly returns the session as an extra, non-authorizing session that
// encrypts the response's first parameter, or nil when encryption is off.
func (d *Device) encryptOnly() []tpm2.Session {
	if d.sess == nil {
		return nil
	}
	return []tpm2.Session{d.sess.use(nil, false, false, true)}
}
