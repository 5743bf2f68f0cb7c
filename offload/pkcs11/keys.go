//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sync"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

// keyHandle is what an engine-made offload.Key carries: the object handle,
// looked up once and cached (handles stay valid across the sessions of one
// module life), and the attributes that find the object again when a
// recovery voids the handle: class, CKA_ID and CKA_LABEL.
type keyHandle struct {
	class uint
	id    []byte
	label string

	name string // the key's URI; "" when it has neither id nor label

	mu  sync.Mutex
	obj pkcs11.ObjectHandle // guarded by mu
	gen uint64              // the engine's key generation obj belongs to; guarded by mu
}

// Curve object identifiers, as CKA_EC_PARAMS carries them (DER).
var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521    = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}

	curveOIDs = map[offload.KeyType]asn1.ObjectIdentifier{
		offload.KeyECDSAP256: oidP256, offload.KeyECDSAP384: oidP384, offload.KeyECDSAP521: oidP521,
	}
)

// FindKey finds the private (or, with type=secret-key, secret) key that an
// RFC 7512 URI names by object label and/or id, for example
// "pkcs11:token=web;object=tls-key;type=private". Token attributes in the
// URI must match this engine's token and module-path its module; pin-value
// and pin-source are ignored (the engine logged in at Open). No match is an
// error wrapping offload.ErrNotFound; more than one, offload.ErrInvalid.
func (e *Engine) FindKey(ctx context.Context, uri string) (*offload.Key, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return e.FindKeyURI(ctx, u)
}

// FindKeyURI is FindKey for a parsed URI.
func (e *Engine) FindKeyURI(ctx context.Context, u *URI) (*offload.Key, error) {
	if u == nil {
		return nil, fmt.Errorf("pkcs11: nil URI: %w", offload.ErrInvalid)
	}
	var class uint
	switch u.Type {
	case "", TypePrivate:
		class = pkcs11.CKO_PRIVATE_KEY
	case TypeSecretKey:
		class = pkcs11.CKO_SECRET_KEY
	default:
		return nil, fmt.Errorf("pkcs11: FindKey finds private and secret keys, not type=%s: %w", u.Type, offload.ErrInvalid)
	}
	if err := e.matchToken(u); err != nil {
		return nil, err
	}
	tmpl := objectTemplate(class, u)
	desc := u.String()
	f := submit(e, ctx, offload.OpSign, false, offload.Call{}, func(w *worker) (*offload.Key, error) {
		objs, err := findObjects(w, tmpl, 2)
		if err != nil {
			return nil, err
		}
		switch len(objs) {
		case 0:
			if e.login && !loggedIn(w) {
				// Private objects are hidden because the login went
				// underneath us: say so, and recovery logs in and retries.
				return nil, ckErr("C_FindObjects", pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
			}
			return nil, fmt.Errorf("pkcs11: no key matches %s: %w", desc, offload.ErrNotFound)
		case 1:
			return e.loadKey(w, objs[0], class)
		}
		return nil, fmt.Errorf("pkcs11: %s is ambiguous: more than one key matches: %w", desc, offload.ErrInvalid)
	})
	return f.Wait(ctx)
}

// matchToken checks a URI's token and module attributes against the engine.
func (e *Engine) matchToken(u *URI) error {
	ti := e.token
	mismatch := func(attr, want, have string) error {
		return fmt.Errorf("pkcs11: the URI's %s %q is not this engine's (%q): %w", attr, want, have, offload.ErrNotFound)
	}
	switch {
	case u.Token != "" && u.Token != ti.Label:
		return mismatch("token", u.Token, ti.Label)
	case u.Serial != "" && u.Serial != ti.SerialNumber:
		return mismatch("serial", u.Serial, ti.SerialNumber)
	case u.Manufacturer != "" && u.Manufacturer != ti.ManufacturerID:
		return mismatch("manufacturer", u.Manufacturer, ti.ManufacturerID)
	case u.Model != "" && u.Model != ti.Model:
		return mismatch("model", u.Model, ti.Model)
	case u.SlotID != nil && *u.SlotID != e.curSlot():
		return mismatch("slot-id", fmt.Sprint(*u.SlotID), fmt.Sprint(e.curSlot()))
	}
	if u.ModulePath != "" {
		p, err := filepath.Abs(u.ModulePath)
		if err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
		}
		if p != e.mod.path {
			return mismatch("module-path", u.ModulePath, e.mod.path)
		}
	}
	return nil
}

// findObjects returns up to max objects matching tmpl, or every one when
// max is 0.
func findObjects(w *worker, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	if err := w.p.FindObjectsInit(w.sh, tmpl); err != nil {
		return nil, ckErr("C_FindObjectsInit", err)
	}
	var all []pkcs11.ObjectHandle
	for max == 0 || len(all) < max {
		n := 64
		if max > 0 {
			n = max - len(all)
		}
		objs, _, err := w.p.FindObjects(w.sh, n)
		if err != nil {
			w.p.FindObjectsFinal(w.sh)
			return nil, ckErr("C_FindObjects", err)
		}
		if len(objs) == 0 {
			break
		}
		all = append(all, objs...)
	}
	if err := w.p.FindObjectsFinal(w.sh); err != nil {
		return nil, ckErr("C_FindObjectsFinal", err)
	}
	return all, nil
}

// objectTemplate is the search template for objects of class that u
// names by label (object) and id.
func objectTemplate(class uint, u *URI) []*pkcs11.Attribute {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, bytes.Clone(u.ID)))
	}
	return tmpl
}

// attrs reads the given attributes of obj, by type.
func attrs(w *worker, obj pkcs11.ObjectHandle, types ...uint) (map[uint][]byte, error) {
	tmpl := make([]*pkcs11.Attribute, len(types))
	for i, t := range types {
		tmpl[i] = pkcs11.NewAttribute(t, nil)
	}
	got, err := w.p.GetAttributeValue(w.sh, obj, tmpl)
	if err != nil {
		return nil, ckErr("C_GetAttributeValue", err)
	}
	m := make(map[uint][]byte, len(got))
	for _, a := range got {
		m[a.Type] = a.Value
	}
	return m, nil
}

// ckULong decodes a CK_ULONG attribute value (native byte order and size).
func ckULong(b []byte) (uint, bool) {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}

// loadKey builds an offload.Key for a private or secret key object.
func (e *Engine) loadKey(w *worker, obj pkcs11.ObjectHandle, class uint) (*offload.Key, error) {
	a, err := attrs(w, obj, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_ID, pkcs11.CKA_LABEL)
	if err != nil {
		return nil, err
	}
	kt, ok := ckULong(a[pkcs11.CKA_KEY_TYPE])
	if !ok {
		return nil, fmt.Errorf("pkcs11: key object has no CKA_KEY_TYPE: %w", offload.ErrInvalid)
	}
	h := e.newHandle(obj, class, a[pkcs11.CKA_ID], string(a[pkcs11.CKA_LABEL]))
	if class == pkcs11.CKO_SECRET_KEY {
		if kt != pkcs11.CKK_AES {
			return nil, fmt.Errorf("pkcs11: secret key of type %#x: %w", kt, offload.ErrUnsupported)
		}
		v, err := attrs(w, obj, pkcs11.CKA_VALUE_LEN)
		if err != nil {
			return nil, err
		}
		n, _ := ckULong(v[pkcs11.CKA_VALUE_LEN])
		return offload.NewKey(e, offload.KeyAES, int(n)*8, nil, h), nil
	}
	switch kt {
	case pkcs11.CKK_EC, pkcs11.CKK_RSA, ckkECEdwards:
	default:
		return nil, fmt.Errorf("pkcs11: private key of type %#x: %w", kt, offload.ErrUnsupported)
	}
	pub, err := e.publicKey(w, h, kt)
	if err != nil {
		return nil, err
	}
	t, bits, err := offload.KeyTypeOf(pub)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	return offload.NewKey(e, t, bits, pub, h), nil
}

// publicKey finds the public half of a private key: from the public key
// object with the same CKA_ID (or, without an id, label), else from a
// certificate with the same id or label, else from the private object's own
// attributes (CKA_EC_POINT and CKA_EC_PARAMS, or CKA_MODULUS and
// CKA_PUBLIC_EXPONENT).
func (e *Engine) publicKey(w *worker, h *keyHandle, kt uint) (crypto.PublicKey, error) {
	link := func(class uint) []*pkcs11.Attribute {
		t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
		switch {
		case len(h.id) > 0:
			return append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, h.id))
		case h.label != "":
			return append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.label))
		}
		return nil
	}
	var tried []error
	if tmpl := link(pkcs11.CKO_PUBLIC_KEY); tmpl != nil {
		objs, err := findObjects(w, tmpl, 4)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			pub, err := publicFromObject(w, o, kt)
			if err == nil && pubMatchesType(pub, kt) {
				return pub, nil
			}
			if err == nil {
				err = fmt.Errorf("public key object holds a %T key", pub)
			}
			tried = append(tried, err)
		}
	}
	if tmpl := link(pkcs11.CKO_CERTIFICATE); tmpl != nil {
		objs, err := findObjects(w, tmpl, 4)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			a, err := attrs(w, o, pkcs11.CKA_VALUE)
			if err != nil {
				tried = append(tried, err)
				continue
			}
			cert, err := x509.ParseCertificate(a[pkcs11.CKA_VALUE])
			if err != nil {
				tried = append(tried, err)
				continue
			}
			if !pubMatchesType(cert.PublicKey, kt) {
				tried = append(tried, fmt.Errorf("certificate holds a %T key", cert.PublicKey))
				continue
			}
			return cert.PublicKey, nil
		}
	}
	pub, err := publicFromObject(w, h.obj, kt)
	if err == nil && pubMatchesType(pub, kt) {
		return pub, nil
	}
	if err == nil {
		err = fmt.Errorf("private key attributes hold a %T key", pub)
	}
	tried = append(tried, err)
	return nil, fmt.Errorf("pkcs11: no public key for private key %q (id %x): %v: %w", h.label, h.id, tried, offload.ErrNotFound)
}

// pubMatchesType reports whether pub is of the kind CKA_KEY_TYPE kt names.
func pubMatchesType(pub crypto.PublicKey, kt uint) bool {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return kt == pkcs11.CKK_EC
	case *rsa.PublicKey:
		return kt == pkcs11.CKK_RSA
	case ed25519.PublicKey:
		return kt == ckkECEdwards
	}
	return false
}

// publicFromObject reads a public key from a key object's attributes.
func publicFromObject(w *worker, o pkcs11.ObjectHandle, kt uint) (crypto.PublicKey, error) {
	if kt == pkcs11.CKK_RSA {
		a, err := attrs(w, o, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return nil, err
		}
		n := new(big.Int).SetBytes(a[pkcs11.CKA_MODULUS])
		ex := new(big.Int).SetBytes(a[pkcs11.CKA_PUBLIC_EXPONENT])
		if n.Sign() == 0 || !ex.IsInt64() || ex.Int64() < 2 || ex.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("pkcs11: bad RSA public key attributes")
		}
		return &rsa.PublicKey{N: n, E: int(ex.Int64())}, nil
	}
	a, err := attrs(w, o, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
	if err != nil {
		return nil, err
	}
	return parseECPublic(a[pkcs11.CKA_EC_PARAMS], a[pkcs11.CKA_EC_POINT])
}

// parseECPublic decodes CKA_EC_PARAMS (a named curve) and CKA_EC_POINT (a
// DER OCTET STRING, or on some tokens the bare point).
func parseECPublic(params, point []byte) (crypto.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	var curveName string
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) != 0 {
		oid = nil
		if rest, err := asn1.UnmarshalWithParams(params, &curveName, "printable"); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("pkcs11: CKA_EC_PARAMS is not a named curve")
		}
	}
	var pt []byte
	if rest, err := asn1.Unmarshal(point, &pt); err != nil || len(rest) != 0 {
		pt = point
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidP256):
		curve = elliptic.P256()
	case oid.Equal(oidP384):
		curve = elliptic.P384()
	case oid.Equal(oidP521):
		curve = elliptic.P521()
	case oid.Equal(oidEd25519) || curveName == "edwards25519":
		if len(pt) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("pkcs11: Ed25519 point is %d bytes", len(pt))
		}
		return ed25519.PublicKey(bytes.Clone(pt)), nil
	default:
		return nil, fmt.Errorf("pkcs11: curve %v%s: %w", oid, curveName, offload.ErrUnsupported)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: CKA_EC_POINT: %w", err)
	}
	return pub, nil
}

// badCurveParams reports whether code says a key generation refused its
// CKA_EC_PARAMS.
func badCurveParams(code pkcs11.Error) bool {
	switch code {
	case pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_TEMPLATE_INCONSISTENT, pkcs11.CKR_DOMAIN_PARAMS_INVALID, pkcs11.CKR_CURVE_NOT_SUPPORTED:
		return true
	}
	return false
}

// handleOf returns the engine's handle in k, checking that k is this
// engine's.
func (e *Engine) handleOf(k *offload.Key) (*keyHandle, error) {
	if k == nil {
		return nil, fmt.Errorf("pkcs11: nil key: %w", offload.ErrInvalid)
	}
	h, ok := k.Handle().(*keyHandle)
	if k.Engine() != offload.Engine(e) || !ok {
		return nil, fmt.Errorf("pkcs11: %w: %v", offload.ErrForeignKey, k)
	}
	return h, nil
}

// newObjectName names a key object this engine creates: with the CKA_ID
// and CKA_LABEL given, or a random 16-byte CKA_ID and the label "offcrypt-"
// followed by the id's first 8 bytes in hex; common gives the attributes
// every such object carries (class, token or session object, id, label),
// so that the key can be found again after recovery.
func newObjectName(id []byte, label string, token bool) (_ []byte, _ string, common func(class uint) []*pkcs11.Attribute) {
	if id == nil {
		id = make([]byte, 16)
		rand.Read(id)
	}
	id = bytes.Clone(id)
	if label == "" {
		label = "offcrypt-" + hex.EncodeToString(id[:min(len(id), 8)])
	}
	common = func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		}
	}
	return id, label, common
}

// GenerateKey makes a new key on the token: ECDSA P-256, P-384 or P-521
// (bits is ignored or must match the curve), RSA of 2048 to 4096 bits (0
// means 2048), Ed25519 where the token has CKM_EC_EDWARDS_KEY_PAIR_GEN, or
// AES of 128, 192 or 256 bits (0 means 256). It is Generate with a random
// 16-byte CKA_ID and the label "offcrypt-" followed by the id's first 8
// bytes in hex.
func (e *Engine) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	return e.Generate(ctx, KeyOptions{Type: t, Bits: bits})
}

// Generate makes a new key on the token, as o says: a token object (or a
// session object), private, sensitive and not extractable, with o's label
// and CKA_ID; a key pair's public object carries the same label and ID.
// The key's Name is its URI. A label or ID that a key object on the token
// already has is refused with an error wrapping offload.ErrInvalid, before
// anything is made (two processes that generate the same name at the same
// moment can still both succeed: the check and the generation are two
// calls). A key type or size the token cannot make fails with
// offload.ErrUnsupported before any session is used.
func (e *Engine) Generate(ctx context.Context, o KeyOptions) (*offload.Key, error) {
	if e.closed.Load() {
		return nil, errClosed
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	t, bits := o.Type, o.Bits
	id, label, common := newObjectName(o.ID, o.Label, !o.Session)
	named := o.ID != nil || o.Label != ""
	private := func(extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
		return append(append(common(pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)), extra...)
	}
	public := func(extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
		return append(append(common(pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true)), extra...)
	}
	unsupported := func(mech string) (*offload.Key, error) {
		return nil, fmt.Errorf("pkcs11: token cannot make %v keys (no %s): %w", t, mech, offload.ErrUnsupported)
	}

	var (
		mech      uint
		pubT, prT []*pkcs11.Attribute
		class     = uint(pkcs11.CKO_PRIVATE_KEY)
	)
	switch t {
	case offload.KeyECDSAP256, offload.KeyECDSAP384, offload.KeyECDSAP521:
		oid, size := curveOIDs[t], map[offload.KeyType]int{offload.KeyECDSAP256: 256, offload.KeyECDSAP384: 384, offload.KeyECDSAP521: 521}[t]
		if bits != 0 && bits != size {
			return nil, fmt.Errorf("pkcs11: %v keys have %d bits, not %d: %w", t, size, bits, offload.ErrInvalid)
		}
		if !e.hasMech(pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR) || !e.hasMech(pkcs11.CKM_ECDSA, ckfSign) {
			return unsupported("CKM_EC_KEY_PAIR_GEN and CKM_ECDSA")
		}
		params, _ := asn1.Marshal(oid)
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		pubT, prT = public(pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params)), private()
	case offload.KeyRSA:
		if bits == 0 {
			bits = 2048
		}
		if bits < 2048 || bits > 4096 {
			return nil, fmt.Errorf("pkcs11: RSA keys of %d bits: want 2048 to 4096: %w", bits, offload.ErrInvalid)
		}
		mi, ok := e.mechs[pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN]
		if !ok || mi.Flags&pkcs11.CKF_GENERATE_KEY_PAIR == 0 || (mi.MaxKeySize != 0 && uint(bits) > mi.MaxKeySize) || uint(bits) < mi.MinKeySize {
			return unsupported(fmt.Sprintf("CKM_RSA_PKCS_KEY_PAIR_GEN for %d bits", bits))
		}
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pubT = public(
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
		prT = private(pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
	case offload.KeyEd25519:
		if !e.hasMech(ckmECEdwardsKeyPairGen, pkcs11.CKF_GENERATE_KEY_PAIR) || !e.hasMech(ckmEdDSA, ckfSign) {
			return unsupported("CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA")
		}
		params, _ := asn1.MarshalWithParams("edwards25519", "printable")
		mech = ckmECEdwardsKeyPairGen
		pubT, prT = public(pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params)), private()
	case offload.KeyAES:
		if bits == 0 {
			bits = 256
		}
		if bits != 128 && bits != 192 && bits != 256 {
			return nil, fmt.Errorf("pkcs11: AES keys of %d bits: %w", bits, offload.ErrInvalid)
		}
		mi, ok := e.mechs[pkcs11.CKM_AES_KEY_GEN]
		if !ok || mi.Flags&pkcs11.CKF_GENERATE == 0 || (mi.MaxKeySize != 0 && uint(bits/8) > mi.MaxKeySize) || uint(bits/8) < mi.MinKeySize {
			return unsupported(fmt.Sprintf("CKM_AES_KEY_GEN for %d bits", bits))
		}
		mech, class = pkcs11.CKM_AES_KEY_GEN, pkcs11.CKO_SECRET_KEY
		prT = append(common(pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, bits/8),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
	default:
		return nil, fmt.Errorf("pkcs11: cannot make %v keys: %w", t, offload.ErrUnsupported)
	}

	f := submitOnce(e, ctx, offload.OpSign, false, offload.Call{}, func(w *worker) (*offload.Key, error) {
		if named {
			// Check and make under one lock, so that two generations in this
			// engine cannot both pass the check.
			e.names.Lock()
			defer e.names.Unlock()
			if err := keyNameFree(w, id, label); err != nil {
				return nil, err
			}
		}
		m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
		var obj pkcs11.ObjectHandle
		var err error
		if class == pkcs11.CKO_SECRET_KEY {
			obj, err = w.p.GenerateKey(w.sh, m, prT)
			if err != nil {
				return nil, ckErr("C_GenerateKey", err)
			}
		} else {
			_, obj, err = w.p.GenerateKeyPair(w.sh, m, pubT, prT)
			if code, _ := ckCode(err); t == offload.KeyEd25519 && badCurveParams(code) {
				// Some tokens name the curve by OID rather than by name.
				oid, _ := asn1.Marshal(oidEd25519)
				pubT = append(slices.Clone(pubT[:len(pubT)-1]), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oid))
				_, obj, err = w.p.GenerateKeyPair(w.sh, m, pubT, prT)
			}
			if err != nil {
				return nil, ckErr("C_GenerateKeyPair", err)
			}
		}
		return e.loadKey(w, obj, class)
	})
	return f.Wait(ctx)
}
