package tpm

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// A TPM holds few transient objects at once (3 on swtpm, often 3 on chips),
// and keys, hash sequences and a created SRK share those slots. The device
// keeps every transient object it owns in an *object and loads it on demand:
// when the TPM answers TPM_RC_OBJECT_MEMORY, the least recently used object
// that no command holds is moved out (a key is flushed and later re-loaded
// from its blobs; a sequence or the SRK is context-saved first and later
// context-loaded) and the load is tried again.

type objectKind int

const (
	kindKey      objectKind = iota // re-loaded with TPM2_Load from pub/priv
	kindSequence                   // context-saved and context-loaded
	kindSRK                        // context-saved; re-created after a restart
)

// object is one transient object the device owns.
type object struct {
	kind   objectKind
	handle tpm2.TPMHandle // 0 while not loaded
	gen    uint64         // the connection handle and saved belong to
	saved  *tpm2.TPMSContext
	used   uint64 // the device's clock at the last use, for LRU
	pins   int    // > 0 while a command needs it loaded

	// kindKey: what TPM2_Load takes.
	pub  tpm2.TPM2BPublic
	priv tpm2.TPM2BPrivate
}

// ErrObjectLost is matched by the error of an operation on a hash sequence
// whose TPM state was lost with the connection (a TPM restart): it cannot be
// recovered, and the hash must start again.
var ErrObjectLost = errors.New("tpm: object lost with the TPM's state")

// errNoSlot is wrapped, with TPM_RC_OBJECT_MEMORY, when the TPM has no free
// object slot and the device holds none it could move out.
var errNoSlot = errors.New("tpm: no free object slot on the TPM, and none held by this device can be moved out")

// track adds o to the objects the device manages.
func (d *Device) track(o *object) {
	d.clock++
	o.used = d.clock
	d.objects = append(d.objects, o)
}

// forget flushes o if it is loaded and stops managing it.
func (d *Device) forget(ctx context.Context, o *object) error {
	var err error
	if o.handle != 0 && o.gen == d.gen && d.link != nil {
		err = d.flush(ctx, o.handle)
	}
	o.handle, o.saved = 0, nil
	for i, x := range d.objects {
		if x == o {
			d.objects = append(d.objects[:i], d.objects[i+1:]...)
			break
		}
	}
	return err
}

// pin loads o if needed and keeps it loaded until unpin.
func (d *Device) pin(ctx context.Context, o *object) (tpm2.TPMHandle, error) {
	if o.gen != d.gen {
		// Loaded or saved on a connection that is gone.
		o.handle, o.saved = 0, nil
		if o.kind == kindSequence {
			_ = d.forget(ctx, o)
			return 0, fmt.Errorf("tpm: hash sequence: %w", ErrObjectLost)
		}
		o.gen = d.gen
	}
	d.clock++
	o.used = d.clock
	if o.handle != 0 {
		o.pins++
		return o.handle, nil
	}
	h, err := d.inSlot(ctx, o, func() (tpm2.TPMHandle, error) { return d.load(ctx, o) })
	if err != nil {
		return 0, err
	}
	o.handle = h
	o.pins++
	return h, nil
}

// inSlot runs load, which puts one object into a slot, moving objects of
// this device (never keep) out of the TPM while it answers
// TPM_RC_OBJECT_MEMORY.
func (d *Device) inSlot(ctx context.Context, keep *object, load func() (tpm2.TPMHandle, error)) (tpm2.TPMHandle, error) {
	// Each object is moved out at most once: a load that moves out what
	// it then needs (a key and the SRK it loads under) must not go round
	// for ever.
	for tries := len(d.objects) + 1; ; tries-- {
		h, err := load()
		if err == nil || !errors.Is(err, tpm2.TPMRCObjectMemory) {
			return h, err
		}
		victim := d.victim(keep)
		if victim == nil || tries == 0 {
			return 0, fmt.Errorf("%w: %w", errNoSlot, err)
		}
		if err := d.evict(ctx, victim); err != nil {
			return 0, err
		}
	}
}

func (d *Device) unpin(o *object) {
	if o != nil && o.pins > 0 {
		o.pins--
	}
}

// load brings o into a slot.
func (d *Device) load(ctx context.Context, o *object) (tpm2.TPMHandle, error) {
	if o.saved != nil {
		var h tpm2.TPMHandle
		err := d.run(ctx, func(t transport.TPM) error {
			rsp, err := tpm2.ContextLoad{Context: *o.saved}.Execute(t)
			if err != nil {
				return wrapRC("ContextLoad", err)
			}
			h = rsp.LoadedHandle
			return nil
		})
		if err == nil {
			o.saved = nil
		}
		return h, err
	}
	switch o.kind {
	case kindSRK:
		return d.createSRK(ctx)
	case kindKey:
		return d.loadKey(ctx, o)
	}
	return 0, fmt.Errorf("tpm: hash sequence: %w", ErrObjectLost)
}

// loadKey loads a key's blobs under the SRK.
func (d *Device) loadKey(ctx context.Context, o *object) (tpm2.TPMHandle, error) {
	parent, err := d.srkHandle(ctx)
	if err != nil {
		return 0, err
	}
	defer d.unpin(d.srk)
	var h tpm2.TPMHandle
	err = d.run(ctx, func(t transport.TPM) error {
		rsp, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: parent, Name: d.srkName, Auth: d.authFor(nil, false, false)},
			InPrivate:    o.priv,
			InPublic:     o.pub,
		}.Execute(t)
		if err != nil {
			return wrapRC("Load", err)
		}
		h = rsp.ObjectHandle
		return nil
	})
	return h, err
}

// victim picks the least recently used loaded object that no command holds,
// other than keep.
func (d *Device) victim(keep *object) *object {
	var v *object
	for _, o := range d.objects {
		if o == keep || o.handle == 0 || o.pins > 0 || o.gen != d.gen {
			continue
		}
		if v == nil || o.used < v.used {
			v = o
		}
	}
	return v
}

// evict moves o out of its slot.
func (d *Device) evict(ctx context.Context, o *object) error {
	if o.kind != kindKey {
		err := d.run(ctx, func(t transport.TPM) error {
			rsp, err := tpm2.ContextSave{SaveHandle: o.handle}.Execute(t)
			if err != nil {
				return wrapRC("ContextSave", err)
			}
			o.saved = &rsp.Context
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := d.flush(ctx, o.handle); err != nil {
		return err
	}
	o.handle = 0
	return nil
}

// setupSRK reads the persistent SRK, or prepares the transient one (created
// on first use, then kept like any other object).
func (d *Device) setupSRK(ctx context.Context) error {
	if d.cfg.SRKHandle != 0 {
		h := tpm2.TPMHandle(d.cfg.SRKHandle)
		pub, name, err := d.readPublic(ctx, h)
		if err != nil {
			return fmt.Errorf("tpm: storage root key at %#x: %w", d.cfg.SRKHandle, err)
		}
		if !pub.ObjectAttributes.Restricted || !pub.ObjectAttributes.Decrypt || pub.ObjectAttributes.SignEncrypt {
			return fmt.Errorf("tpm: the key at %#x is not a storage key (restricted decrypt): %w", d.cfg.SRKHandle, errWrongKey)
		}
		d.srkPers, d.srkPub, d.srkName = h, *pub, name
		return nil
	}
	if d.srk == nil {
		d.srk = &object{kind: kindSRK, gen: d.gen}
		d.track(d.srk)
	}
	if _, err := d.pin(ctx, d.srk); err != nil {
		return d.slotError("creating the storage root key", err)
	}
	d.unpin(d.srk)
	return nil
}

// srkHandle returns the SRK's handle, pinned until d.unpin(d.srk).
func (d *Device) srkHandle(ctx context.Context) (tpm2.TPMHandle, error) {
	if d.srk == nil {
		return d.srkPers, nil
	}
	return d.pin(ctx, d.srk)
}

// createSRK creates the SRK from the standard ECC P-256 template.
func (d *Device) createSRK(ctx context.Context) (tpm2.TPMHandle, error) {
	var owner []byte
	if d.cfg.OwnerAuth != nil {
		a, err := d.cfg.OwnerAuth(ctx)
		if err != nil {
			return 0, fmt.Errorf("tpm: owner auth: %w", err)
		}
		owner = a
	}
	var h tpm2.TPMHandle
	err := d.run(ctx, func(t transport.TPM) error {
		rsp, err := tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(owner)},
			InPublic:      tpm2.New2B(srkTemplate()),
		}.Execute(t)
		if err != nil {
			return wrapRC("CreatePrimary", err)
		}
		pub, err := rsp.OutPublic.Contents()
		if err != nil {
			return fmt.Errorf("tpm: CreatePrimary: %w", err)
		}
		h, d.srkPub, d.srkName = rsp.ObjectHandle, *pub, rsp.Name
		return nil
	})
	return h, err
}

// runSlot runs fn, which uses key k, making room when the TPM needs a
// free object slot for it (a persistent key is loaded into one for the
// command's duration).
func (d *Device) runSlot(ctx context.Context, k *Key, fn func(t transport.TPM) error) error {
	var keep *object
	if k != nil {
		keep = k.obj
	}
	_, err := d.inSlot(ctx, keep, func() (tpm2.TPMHandle, error) { return 0, d.run(ctx, fn) })
	return err
}

// srkTemplate is the storage root key template of TPM 2.0 key files (and of
// tpm2-openssl, tpm2-tss-engine and go-tpm-keyfiles): the TCG's ECC P-256
// SRK template with an empty unique field. The same template with a
// zero-filled unique field makes a different key.
func srkTemplate() tpm2.TPMTPublic {
	t := tpm2.ECCSRKTemplate
	t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	return t
}

// readPublic reads the public area and name of a loaded or persistent
// object.
func (d *Device) readPublic(ctx context.Context, h tpm2.TPMHandle) (*tpm2.TPMTPublic, tpm2.TPM2BName, error) {
	var pub *tpm2.TPMTPublic
	var name tpm2.TPM2BName
	err := d.runSlot(ctx, nil, func(t transport.TPM) error {
		rsp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(t)
		if err != nil {
			return wrapRC("ReadPublic", err)
		}
		name = rsp.Name
		pub, err = rsp.OutPublic.Contents()
		return err
	})
	return pub, name, err
}

// slotError names what failed when a slot could not be had.
func (d *Device) slotError(what string, err error) error {
	if errors.Is(err, tpm2.TPMRCObjectMemory) || errors.Is(err, tpm2.TPMRCSessionMemory) {
		return fmt.Errorf("tpm: %s: the TPM's slots are held by another client (set Config.FlushStale if none is running): %w", what, err)
	}
	return err
}
