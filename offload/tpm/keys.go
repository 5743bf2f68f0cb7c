package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"

	keyfile "github.com/foxboron/go-tpm-keyfiles"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/offcrypt/offcrypt/offload"
)

// AuthFunc returns a key's auth value (its password). It is called when the
// key is first used, and not again once the TPM has accepted or refused the
// value.
type AuthFunc func(ctx context.Context) ([]byte, error)

// Key is a TPM key a Device can use: a key loaded from its blobs under the
// storage root key (made by CreateKey or read from a key file), or one at a
// persistent handle. It belongs to the Device that made it and, like it, is
// used from the Device's goroutine only.
type Key struct {
	typ    offload.KeyType
	bits   int
	public crypto.PublicKey
	tpub   tpm2.TPMTPublic
	name   tpm2.TPM2BName

	persistent tpm2.TPMHandle // non-zero for a persistent key
	obj        *object        // a transient key's blobs and slot
	parent     tpm2.TPMHandle // a transient key's parent, as its key file names it

	auth     AuthFunc
	authVal  []byte
	authHave bool
	authErr  error // the TPM refused authVal: every later use fails with it
}

// Type returns the key's type.
func (k *Key) Type() offload.KeyType { return k.typ }

// Bits returns the key's size: the RSA modulus or the curve's field size.
func (k *Key) Bits() int { return k.bits }

// Public returns the key's public half (*ecdsa.PublicKey or *rsa.PublicKey).
func (k *Key) Public() crypto.PublicKey { return k.public }

// Handle returns the persistent handle of a persistent key, zero otherwise.
func (k *Key) Handle() uint32 { return uint32(k.persistent) }

// CanDecrypt reports whether the key is an RSA key whose attributes allow
// TPM2_RSA_Decrypt (and so the raw private-key operation, when its scheme is
// null).
func (k *Key) CanDecrypt() bool { return k.typ == offload.KeyRSA && k.tpub.ObjectAttributes.Decrypt }

// CanSign reports whether the key's attributes allow TPM2_Sign.
func (k *Key) CanSign() bool { return k.tpub.ObjectAttributes.SignEncrypt }

// KeySpec says what key CreateKey makes.
type KeySpec struct {
	// Type is offload.KeyECDSAP256, offload.KeyECDSAP384 or offload.KeyRSA.
	Type offload.KeyType
	// Bits is the RSA modulus size, 2048 or 3072; zero means 2048.
	Bits int
	// Auth, when set, gives the key's auth value at creation (sent inside
	// the encrypted session) and again when the key is used.
	Auth AuthFunc
}

// template returns the public template for spec. RSA keys may both sign
// and decrypt with the null scheme, so the private-key operation serves
// RSASSA, RSA-PSS with any salt, OAEP and PKCS #1 v1.5 decryption.
func (spec KeySpec) template() (tpm2.TPMTPublic, error) {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		SignEncrypt:         true,
	}
	switch spec.Type {
	case offload.KeyECDSAP256, offload.KeyECDSAP384:
		curve, size := tpm2.TPMECCNistP256, 32
		if spec.Type == offload.KeyECDSAP384 {
			curve, size = tpm2.TPMECCNistP384, 48
		}
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgECC,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
				CurveID:   curve,
				KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
				X: tpm2.TPM2BECCParameter{Buffer: make([]byte, size)},
				Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, size)},
			}),
		}, nil
	case offload.KeyRSA:
		bits := spec.Bits
		if bits == 0 {
			bits = 2048
		}
		if bits != 2048 && bits != 3072 {
			return tpm2.TPMTPublic{}, fmt.Errorf("tpm: RSA-%d: only 2048 and 3072 bits: %w", bits, offload.ErrUnsupported)
		}
		attrs.Decrypt = true
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgRSA,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
				KeyBits:   tpm2.TPMKeyBits(bits),
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: make([]byte, bits/8)}),
		}, nil
	}
	return tpm2.TPMTPublic{}, fmt.Errorf("tpm: key type %v: %w", spec.Type, offload.ErrUnsupported)
}

// CreateKey makes a new key under the storage root key and loads it.
func (d *Device) CreateKey(ctx context.Context, spec KeySpec) (*Key, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	tmpl, err := spec.template()
	if err != nil {
		return nil, err
	}
	var auth []byte
	if spec.Auth != nil {
		if auth, err = spec.Auth(ctx); err != nil {
			return nil, fmt.Errorf("tpm: key auth: %w", err)
		}
	}
	parent, err := d.srkHandle(ctx)
	if err != nil {
		return nil, d.slotError("loading the storage root key", err)
	}
	// TPM2_Create needs a free object slot while it works.
	var rsp *tpm2.CreateResponse
	err = d.runSlot(ctx, nil, func(t transport.TPM) (err error) {
		rsp, err = tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: parent, Name: d.srkName, Auth: d.authFor(nil, true, false)},
			InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: auth}}},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(t)
		return wrapRC("Create", err)
	})
	d.unpin(d.srk)
	if err != nil {
		return nil, d.slotError("making the key", err)
	}
	k, err := d.newTransient(ctx, rsp.OutPublic, rsp.OutPrivate)
	if err != nil {
		return nil, err
	}
	if spec.Auth != nil {
		k.auth, k.authVal, k.authHave = spec.Auth, auth, true
	}
	return k, nil
}

// newTransient makes a Key of the blobs, loads it once (so a blob that does
// not belong under this storage root key fails here) and keeps it loaded
// while slots allow.
func (d *Device) newTransient(ctx context.Context, pub tpm2.TPM2BPublic, priv tpm2.TPM2BPrivate) (*Key, error) {
	tpub, err := pub.Contents()
	if err != nil {
		return nil, fmt.Errorf("tpm: key public area: %w: %w", offload.ErrInvalid, err)
	}
	k, err := keyOf(tpub)
	if err != nil {
		return nil, err
	}
	k.obj = &object{kind: kindKey, gen: d.gen, pub: pub, priv: priv}
	k.parent = d.parentHandle()
	d.track(k.obj)
	if _, err := d.pin(ctx, k.obj); err != nil {
		_ = d.forget(ctx, k.obj)
		if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCSize) || errors.Is(err, tpm2.TPMRCValue) {
			return nil, fmt.Errorf("tpm: the key was not made under this TPM's storage root key: %w: %w", offload.ErrInvalid, err)
		}
		return nil, d.slotError("loading the key", err)
	}
	d.unpin(k.obj)
	name, err := tpm2.ObjectName(tpub)
	if err != nil {
		return nil, fmt.Errorf("tpm: key name: %w", err)
	}
	k.name = *name
	return k, nil
}

// keyOf types a public area.
func keyOf(pub *tpm2.TPMTPublic) (*Key, error) {
	p, err := tpm2.Pub(*pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: key public area: %w: %w", errWrongKey, err)
	}
	k := &Key{tpub: *pub, public: p}
	switch p := p.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve.Params().BitSize {
		case 256:
			k.typ = offload.KeyECDSAP256
		case 384:
			k.typ = offload.KeyECDSAP384
		default:
			return nil, fmt.Errorf("tpm: curve %s: %w", p.Curve.Params().Name, offload.ErrUnsupported)
		}
		k.bits = p.Curve.Params().BitSize
	case *rsa.PublicKey:
		k.typ, k.bits = offload.KeyRSA, p.N.BitLen()
	default:
		return nil, fmt.Errorf("tpm: key of type %T: %w", p, offload.ErrUnsupported)
	}
	if pub.ObjectAttributes.Restricted {
		return nil, fmt.Errorf("tpm: a restricted key (storage or attestation) cannot serve offcrypt: %w", errWrongKey)
	}
	if !pub.ObjectAttributes.SignEncrypt && !pub.ObjectAttributes.Decrypt {
		return nil, fmt.Errorf("tpm: key can neither sign nor decrypt: %w", errWrongKey)
	}
	return k, nil
}

// PersistentKey returns the key at a persistent handle (0x81…). auth gives
// its auth value; nil means the empty one.
func (d *Device) PersistentKey(ctx context.Context, handle uint32, auth AuthFunc) (*Key, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	h := tpm2.TPMHandle(handle)
	if h>>24 != 0x81 {
		return nil, fmt.Errorf("tpm: %#x is not a persistent handle (0x81…): %w", handle, offload.ErrInvalid)
	}
	pub, name, err := d.readPublic(ctx, h)
	if err != nil {
		if errors.Is(err, offload.ErrNotFound) {
			return nil, fmt.Errorf("tpm: no key at %#x: %w", handle, err)
		}
		return nil, err
	}
	k, err := keyOf(pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: the object at %#x: %w", handle, err)
	}
	k.persistent, k.name, k.auth = h, name, auth
	return k, nil
}

// LoadKeyFile loads a TPM 2.0 key file (PEM "TSS2 PRIVATE KEY", as written by
// tpm2-openssl, tpm2-tss-engine and KeyFile) whose parent is this device's
// storage root key. auth gives the key's auth value when the file says it
// has one.
func (d *Device) LoadKeyFile(ctx context.Context, pemBytes []byte, auth AuthFunc) (*Key, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	kf, err := keyfile.Decode(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("tpm: key file: %w: %w", offload.ErrInvalid, err)
	}
	if !kf.Keytype.Equal(keyfile.OIDLoadableKey) {
		return nil, fmt.Errorf("tpm: key file holds a %v, not a loadable key: %w", kf.Keytype, offload.ErrUnsupported)
	}
	if len(kf.Policy) > 0 || len(kf.AuthPolicy) > 0 {
		return nil, fmt.Errorf("tpm: key file: keys with policies: %w", offload.ErrUnsupported)
	}
	if err := d.checkParent(kf.Parent); err != nil {
		return nil, err
	}
	k, err := d.newTransient(ctx, kf.Pubkey, kf.Privkey)
	if err != nil {
		return nil, err
	}
	if !kf.EmptyAuth {
		k.auth = auth
	}
	return k, nil
}

// parentHandle is how a key file names this device's storage root key: the
// owner hierarchy (0x40000001) for the SRK made from the standard template,
// its persistent handle otherwise.
func (d *Device) parentHandle() tpm2.TPMHandle {
	if d.srk == nil {
		return d.srkPers
	}
	return tpm2.TPMRHOwner
}

// checkParent accepts the parent a key file names when it is this device's
// storage root key: the owner hierarchy's standard primary (0x40000001, what
// the format writes for a key under it), or the persistent SRK handle.
func (d *Device) checkParent(parent tpm2.TPMHandle) error {
	switch {
	case parent == tpm2.TPMRHOwner:
		return nil
	case d.srk == nil && parent == d.srkPers:
		return nil
	}
	return fmt.Errorf("tpm: key file's parent %#x is not this device's storage root key: %w", uint32(parent), offload.ErrInvalid)
}

// KeyFile returns a transient key as a TPM 2.0 key file (PEM "TSS2 PRIVATE
// KEY"), loadable by tpm2-openssl and by LoadKeyFile on any device with the
// same storage root key.
func (k *Key) KeyFile() ([]byte, error) {
	if k.obj == nil {
		return nil, fmt.Errorf("tpm: a persistent key has no key file: %w", offload.ErrInvalid)
	}
	opts := []keyfile.TPMKeyOption{keyfile.WithParent(k.parent), keyfile.WithUserAuth(nil)}
	tk := keyfile.NewTPMKey(keyfile.OIDLoadableKey, k.obj.pub, k.obj.priv, opts...)
	tk.EmptyAuth = k.auth == nil
	var b bytes.Buffer
	if err := keyfile.Encode(&b, tk); err != nil {
		return nil, fmt.Errorf("tpm: key file: %w", err)
	}
	return b.Bytes(), nil
}

// Forget flushes a transient key from the TPM and stops managing it; the
// Key is unusable afterwards. A persistent key is left where it is.
func (d *Device) Forget(ctx context.Context, k *Key) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	if k.obj == nil {
		return nil
	}
	err := d.forget(ctx, k.obj)
	k.obj = nil
	return err
}

// use pins the key and returns its handle and auth value; release with
// d.done(k).
func (d *Device) use(ctx context.Context, k *Key) (tpm2.AuthHandle, []byte, error) {
	if k.authErr != nil {
		return tpm2.AuthHandle{}, nil, k.authErr
	}
	if !k.authHave && k.auth != nil {
		a, err := k.auth(ctx)
		if err != nil {
			return tpm2.AuthHandle{}, nil, fmt.Errorf("tpm: key auth: %w", err)
		}
		k.authVal, k.authHave = a, true
	}
	if k.persistent != 0 {
		return tpm2.AuthHandle{Handle: k.persistent, Name: k.name}, k.authVal, nil
	}
	if k.obj == nil {
		return tpm2.AuthHandle{}, nil, fmt.Errorf("tpm: key was forgotten: %w", offload.ErrNotFound)
	}
	h, err := d.pin(ctx, k.obj)
	if err != nil {
		return tpm2.AuthHandle{}, nil, d.slotError("loading the key", err)
	}
	return tpm2.AuthHandle{Handle: h, Name: k.name}, k.authVal, nil
}

// done releases what use pinned, and remembers a refused auth value so the
// callback is not asked again for this key.
func (d *Device) done(k *Key, err error) error {
	if k.obj != nil {
		d.unpin(k.obj)
	}
	if err != nil && errors.Is(err, offload.ErrAuth) {
		clear(k.authVal)
		k.authVal = nil
		k.authErr = fmt.Errorf("tpm: the key's auth value was refused; not asking again: %w", err)
		return k.authErr
	}
	return err
}

// ImportKey brings a private key held in memory (*ecdsa.PrivateKey on P-256
// or P-384, *rsa.PrivateKey of 2048 or 3072 bits) into the TPM under the
// storage root key with TPM2_Import, and loads it. The private key travels
// as a duplicate wrapped to the storage root key (a seed only the TPM can
// recover, then AES-128-CFB and an HMAC over it), never in clear. An
// imported RSA key may both sign and decrypt with the null scheme, as the
// keys CreateKey makes; an imported key is not fixed to the TPM (it existed
// outside it), so its key file says so. auth, when set, gives the key's
// auth value.
func (d *Device) ImportKey(ctx context.Context, priv crypto.PrivateKey, auth AuthFunc) (*Key, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	pub, sens, err := importable(priv)
	if err != nil {
		return nil, err
	}
	var authVal []byte
	if auth != nil {
		if authVal, err = auth(ctx); err != nil {
			return nil, fmt.Errorf("tpm: key auth: %w", err)
		}
		sens.AuthValue = tpm2.TPM2BAuth{Buffer: authVal}
	}
	kem, err := tpm2.ImportEncapsulationKey(&d.srkPub)
	if err != nil {
		return nil, fmt.Errorf("tpm: storage root key as an import target: %w", err)
	}
	name, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: key name: %w", err)
	}
	plain := tpm2.Marshal(sens)
	dup, seed, err := tpm2.CreateDuplicate(rand.Reader, kem, name.Buffer, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("tpm: wrapping the key for import: %w", err)
	}
	parent, err := d.srkHandle(ctx)
	if err != nil {
		return nil, d.slotError("loading the storage root key", err)
	}
	var rsp *tpm2.ImportResponse
	err = d.run(ctx, func(t transport.TPM) (err error) {
		rsp, err = tpm2.Import{
			ParentHandle: tpm2.AuthHandle{Handle: parent, Name: d.srkName, Auth: d.authFor(nil, false, false)},
			ObjectPublic: tpm2.New2B(*pub),
			Duplicate:    tpm2.TPM2BPrivate{Buffer: dup},
			InSymSeed:    tpm2.TPM2BEncryptedSecret{Buffer: seed},
			Symmetric:    tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgNull},
		}.Execute(t)
		return wrapRC("Import", err)
	})
	d.unpin(d.srk)
	if err != nil {
		return nil, d.slotError("importing the key", err)
	}
	k, err := d.newTransient(ctx, tpm2.New2B(*pub), rsp.OutPrivate)
	if err != nil {
		return nil, err
	}
	if auth != nil {
		k.auth, k.authVal, k.authHave = auth, authVal, true
	}
	return k, nil
}

// importable returns the public and sensitive areas of a key to import.
func importable(priv crypto.PrivateKey) (*tpm2.TPMTPublic, tpm2.TPMTSensitive, error) {
	var spec KeySpec
	var sens tpm2.TPMTSensitive
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		switch p.Curve {
		case elliptic.P256():
			spec.Type = offload.KeyECDSAP256
		case elliptic.P384():
			spec.Type = offload.KeyECDSAP384
		default:
			return nil, sens, fmt.Errorf("tpm: import: curve %s: %w", p.Curve.Params().Name, offload.ErrUnsupported)
		}
		size := (p.Curve.Params().BitSize + 7) / 8
		sens = tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgECC,
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: p.D.FillBytes(make([]byte, size))}),
		}
	case *rsa.PrivateKey:
		if len(p.Primes) != 2 {
			return nil, sens, fmt.Errorf("tpm: import: an RSA key of %d primes: %w", len(p.Primes), offload.ErrUnsupported)
		}
		spec.Type, spec.Bits = offload.KeyRSA, p.N.BitLen()
		sens = tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgRSA,
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgRSA, &tpm2.TPM2BPrivateKeyRSA{Buffer: p.Primes[0].Bytes()}),
		}
	default:
		return nil, sens, fmt.Errorf("tpm: import: a key of type %T: %w", priv, offload.ErrUnsupported)
	}
	tmpl, err := spec.template()
	if err != nil {
		return nil, sens, err
	}
	// It was made outside the TPM and may live elsewhere too.
	tmpl.ObjectAttributes.FixedTPM = false
	tmpl.ObjectAttributes.FixedParent = false
	tmpl.ObjectAttributes.SensitiveDataOrigin = false
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: p.X.FillBytes(make([]byte, size))},
			Y: tpm2.TPM2BECCParameter{Buffer: p.Y.FillBytes(make([]byte, size))},
		})
	case *rsa.PrivateKey:
		if p.E != 65537 {
			rp, _ := tmpl.Parameters.RSADetail()
			rp.Exponent = uint32(p.E)
		}
		tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: p.N.Bytes()})
	}
	return &tmpl, sens, nil
}
