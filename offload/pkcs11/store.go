//go:build cgo

package pkcs11

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

var (
	_ offload.KeyStore          = (*Engine)(nil)
	_ offload.CertificateFinder = (*Engine)(nil)
)

// newHandle makes the handle of a key object found or made on a worker.
func (e *Engine) newHandle(obj pkcs11.ObjectHandle, class uint, id []byte, label string) *keyHandle {
	h := &keyHandle{obj: obj, gen: e.rec.keyGen.Load(), class: class, id: id, label: label}
	if len(id) > 0 || label != "" {
		h.name = e.objectURI(class, id, label).String()
	}
	return h
}

// Name returns the key's URI: what offload.Key.Name reports.
func (h *keyHandle) Name() string { return h.name }

// objectURI names an object on this engine's token by its token's label
// and serial number, its label, id and type.
func (e *Engine) objectURI(class uint, id []byte, label string) *URI {
	return &URI{
		Token:  e.token.Label,
		Serial: e.token.SerialNumber,
		Object: label,
		ID:     bytes.Clone(id),
		Type:   objectType(class),
	}
}

// KeyURI returns the URI of one of this engine's keys: the key's label
// (Object), CKA_ID (ID) and type, and its token's label and serial number.
// FindKey accepts it, and so do pkcs11-tool and p11tool. Its String is the
// key's Name.
func (e *Engine) KeyURI(k *offload.Key) (*URI, error) {
	h, err := e.handleOf(k)
	if err != nil {
		return nil, err
	}
	return e.objectURI(h.class, h.id, h.label), nil
}

// parseFor parses uri and checks that its token attributes are this
// engine's.
func (e *Engine) parseFor(uri string) (*URI, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if err := e.matchToken(u); err != nil {
		return nil, err
	}
	return u, nil
}

// notLoggedIn fails a search on a session whose login went underneath
// it, which hides private objects: recovery logs in and retries, where
// an answer of "nothing there" would be wrong.
func (e *Engine) notLoggedIn(w *worker) error {
	if e.login && !loggedIn(w) {
		return ckErr("C_FindObjects", pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
	}
	return nil
}

// keyNameFree fails when a key object already has the id or label.
func keyNameFree(w *worker, id []byte, label string) error {
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_SECRET_KEY} {
		for _, u := range []*URI{{ID: id}, {Object: label}} {
			objs, err := findObjects(w, objectTemplate(class, u), 1)
			if err != nil {
				return err
			}
			if len(objs) > 0 {
				return fmt.Errorf("pkcs11: a %s key %s already exists: %w", objectType(class), nameOf(u), offload.ErrInvalid)
			}
		}
	}
	return nil
}

// nameOf describes the label or id a URI holds, for messages.
func nameOf(u *URI) string {
	if u.Object != "" {
		return fmt.Sprintf("labelled %q", u.Object)
	}
	return fmt.Sprintf("with id %x", u.ID)
}

var allTypes = []string{TypePrivate, TypePublic, TypeSecretKey, TypeCert, TypeData}

// List returns the URIs of the objects on the token that filter selects by
// type, label (object=) and id: "pkcs11:type=cert" lists the certificates,
// "pkcs11:object=web" every object labelled web, "pkcs11:" everything the
// session can see. Only each object's CKA_LABEL and CKA_ID are read. The
// URIs are sorted by type, label and id. An object with neither label nor
// id is listed with a URI that names every object of its type.
func (e *Engine) List(ctx context.Context, filter string) ([]*URI, error) {
	u, err := e.parseFor(filter)
	if err != nil {
		return nil, err
	}
	types := allTypes
	if u.Type != "" {
		types = []string{u.Type}
	}
	return e.list(ctx, u, types)
}

// ListKeys returns the URIs of the private and secret keys that filter
// selects by label, id and type (private or secret-key), as strings that
// FindKey accepts; see List.
func (e *Engine) ListKeys(ctx context.Context, filter string) ([]string, error) {
	u, err := e.parseFor(filter)
	if err != nil {
		return nil, err
	}
	types := []string{TypePrivate, TypeSecretKey}
	switch u.Type {
	case "":
	case TypePrivate, TypeSecretKey:
		types = []string{u.Type}
	default:
		return nil, fmt.Errorf("pkcs11: ListKeys lists private and secret keys, not type=%s: %w", u.Type, offload.ErrInvalid)
	}
	us, err := e.list(ctx, u, types)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(us))
	for i, o := range us {
		names[i] = o.String()
	}
	return names, nil
}

func (e *Engine) list(ctx context.Context, u *URI, types []string) ([]*URI, error) {
	f := submit(e, ctx, offload.OpSign, false, offload.Call{}, func(w *worker) ([]*URI, error) {
		if err := e.notLoggedIn(w); err != nil {
			return nil, err
		}
		var out []*URI
		for _, typ := range types {
			class, _ := objectClass(typ)
			objs, err := findObjects(w, objectTemplate(class, u), 0)
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				a, err := attrs(w, o, pkcs11.CKA_ID, pkcs11.CKA_LABEL)
				if err != nil {
					return nil, err
				}
				out = append(out, e.objectURI(class, a[pkcs11.CKA_ID], string(a[pkcs11.CKA_LABEL])))
			}
		}
		slices.SortStableFunc(out, func(a, b *URI) int {
			return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Object, b.Object), bytes.Compare(a.ID, b.ID))
		})
		return out, nil
	})
	return f.Wait(ctx)
}

// DeleteKey destroys the private or secret key that name, a URI, names,
// and a private key's public key objects: Delete with
// DeleteOptions{PublicKey: true}, for a URI of type private, secret-key or
// none.
func (e *Engine) DeleteKey(ctx context.Context, name string) error {
	u, err := e.parseFor(name)
	if err != nil {
		return err
	}
	switch u.Type {
	case "", TypePrivate, TypeSecretKey:
	default:
		return fmt.Errorf("pkcs11: DeleteKey deletes private and secret keys, not type=%s: %w", u.Type, offload.ErrInvalid)
	}
	return e.delete(ctx, u, DeleteOptions{PublicKey: true})
}

// Delete destroys the one object that uri names by label (object=), id
// and type (private or secret-key when the URI has no type), and, for a
// private key, the companions o asks for. A URI without label and id is
// refused; one that matches no object fails with offload.ErrNotFound, one
// that matches several with offload.ErrInvalid, and then nothing is
// deleted. Every key this engine holds is looked up again before its next
// operation, so operations on a deleted key fail with offload.ErrNotFound
// and no recovery brings it back. A module that cannot destroy objects
// (CKR_FUNCTION_NOT_SUPPORTED, CKR_ACTION_PROHIBITED) fails with its code
// in the error chain. If ctx ends while the token works, the deletion may
// still happen.
func (e *Engine) Delete(ctx context.Context, uri string, o DeleteOptions) error {
	u, err := e.parseFor(uri)
	if err != nil {
		return err
	}
	return e.delete(ctx, u, o)
}

func (e *Engine) delete(ctx context.Context, u *URI, o DeleteOptions) error {
	if u.Object == "" && len(u.ID) == 0 {
		return fmt.Errorf("pkcs11: %s names no object (give object= or id=): %w", u, offload.ErrInvalid)
	}
	types := []string{TypePrivate, TypeSecretKey}
	if u.Type != "" {
		types = []string{u.Type}
	}
	desc := u.String()
	f := submitOnce(e, ctx, offload.OpSign, false, offload.Call{}, func(w *worker) (struct{}, error) {
		var (
			victims []pkcs11.ObjectHandle
			class   uint
		)
		for _, typ := range types {
			c, _ := objectClass(typ)
			objs, err := findObjects(w, objectTemplate(c, u), 2)
			if err != nil {
				return struct{}{}, err
			}
			if len(objs) > 0 {
				class = c
			}
			victims = append(victims, objs...)
		}
		switch len(victims) {
		case 0:
			if err := e.notLoggedIn(w); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, fmt.Errorf("pkcs11: no object matches %s: %w", desc, offload.ErrNotFound)
		case 1:
		default:
			return struct{}{}, fmt.Errorf("pkcs11: %s is ambiguous: more than one object matches; nothing deleted: %w", desc, offload.ErrInvalid)
		}
		if class == pkcs11.CKO_PRIVATE_KEY && (o.PublicKey || o.Certificates) {
			more, err := companions(w, victims[0], o)
			if err != nil {
				return struct{}{}, err
			}
			victims = append(victims, more...)
		}
		defer e.rec.keyGen.Add(1) // every cached handle is looked up again
		for i, v := range victims {
			if err := w.p.DestroyObject(w.sh, v); err != nil {
				err = ckErr("C_DestroyObject", err)
				if i > 0 {
					return struct{}{}, fmt.Errorf("pkcs11: %s was deleted, but %d of its companions were not: %w", desc, len(victims)-i, err)
				}
				return struct{}{}, fmt.Errorf("pkcs11: deleting %s: %w", desc, err)
			}
		}
		return struct{}{}, nil
	})
	_, err := f.Wait(ctx)
	return err
}

// companions finds a private key's public key objects and certificates,
// as o asks, by its CKA_ID, or by its CKA_LABEL when it has no ID.
func companions(w *worker, priv pkcs11.ObjectHandle, o DeleteOptions) ([]pkcs11.ObjectHandle, error) {
	a, err := attrs(w, priv, pkcs11.CKA_ID, pkcs11.CKA_LABEL)
	if err != nil {
		return nil, err
	}
	link := &URI{ID: a[pkcs11.CKA_ID]}
	if len(link.ID) == 0 {
		link = &URI{Object: string(a[pkcs11.CKA_LABEL])}
		if link.Object == "" {
			return nil, nil // nothing links anything to it
		}
	}
	var out []pkcs11.ObjectHandle
	for _, c := range []struct {
		want  bool
		class uint
	}{{o.PublicKey, pkcs11.CKO_PUBLIC_KEY}, {o.Certificates, pkcs11.CKO_CERTIFICATE}} {
		if !c.want {
			continue
		}
		objs, err := findObjects(w, objectTemplate(c.class, link), 0)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// storedCert is a certificate object read from the token.
type storedCert struct {
	id    []byte
	label string
	der   []byte
	cert  *x509.Certificate // nil when the value does not parse
}

// readCerts reads the certificates that tmpl matches.
func readCerts(w *worker, tmpl []*pkcs11.Attribute) ([]storedCert, error) {
	objs, err := findObjects(w, tmpl, 0)
	if err != nil {
		return nil, err
	}
	out := make([]storedCert, 0, len(objs))
	for _, o := range objs {
		a, err := attrs(w, o, pkcs11.CKA_ID, pkcs11.CKA_LABEL, pkcs11.CKA_VALUE)
		if err != nil {
			return nil, err
		}
		c := storedCert{id: a[pkcs11.CKA_ID], label: string(a[pkcs11.CKA_LABEL]), der: a[pkcs11.CKA_VALUE]}
		c.cert, _ = x509.ParseCertificate(c.der)
		out = append(out, c)
	}
	return out, nil
}

// samePublic reports whether a and b are the same public key.
func samePublic(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// FindCertificate finds the certificate that uri names by label (object=)
// and id, with type cert, private or none (a key's URI finds the
// certificate stored beside it), and returns its chain and its key: the
// leaf is the matching certificate whose public key is that of the private
// key with its CKA_ID (or, without one, its label); the chain follows it
// with the certificates that share its CKA_ID, each the issuer of the one
// before, as far as they go. Certificates that match but have no private
// key on the token are not leaves; when none is left the error wraps
// offload.ErrNotFound, when several are, offload.ErrInvalid.
func (e *Engine) FindCertificate(ctx context.Context, uri string) (chain [][]byte, key *offload.Key, err error) {
	u, err := e.parseFor(uri)
	if err != nil {
		return nil, nil, err
	}
	switch u.Type {
	case "", TypeCert, TypePrivate:
	default:
		return nil, nil, fmt.Errorf("pkcs11: FindCertificate finds certificates, not type=%s: %w", u.Type, offload.ErrInvalid)
	}
	desc := u.String()
	type found struct {
		chain [][]byte
		key   *offload.Key
	}
	f := submit(e, ctx, offload.OpSign, false, offload.Call{}, func(w *worker) (found, error) {
		if err := e.notLoggedIn(w); err != nil {
			return found{}, err
		}
		cands, err := readCerts(w, objectTemplate(pkcs11.CKO_CERTIFICATE, u))
		if err != nil {
			return found{}, err
		}
		var (
			leaves []found
			why    []error
		)
		for _, c := range cands {
			k, err := e.certKey(w, c)
			if err != nil {
				why = append(why, err)
				continue
			}
			leaves = append(leaves, found{key: k, chain: [][]byte{c.der}})
			if len(c.id) > 0 {
				group, err := readCerts(w, objectTemplate(pkcs11.CKO_CERTIFICATE, &URI{ID: c.id}))
				if err != nil {
					return found{}, err
				}
				leaves[len(leaves)-1].chain = issuers(c, group)
			}
		}
		switch len(leaves) {
		case 0:
			if len(cands) == 0 {
				return found{}, fmt.Errorf("pkcs11: no certificate matches %s: %w", desc, offload.ErrNotFound)
			}
			return found{}, fmt.Errorf("pkcs11: no certificate that matches %s has its private key on the token: %w: %w", desc, errors.Join(why...), offload.ErrNotFound)
		case 1:
			return leaves[0], nil
		}
		return found{}, fmt.Errorf("pkcs11: %s is ambiguous: %d certificates with their keys match: %w", desc, len(leaves), offload.ErrInvalid)
	})
	r, err := f.Wait(ctx)
	return r.chain, r.key, err
}

// certKey loads the private key stored beside c, and checks that c
// certifies it.
func (e *Engine) certKey(w *worker, c storedCert) (*offload.Key, error) {
	if c.cert == nil {
		return nil, fmt.Errorf("certificate %q (id %x) does not parse", c.label, c.id)
	}
	link := &URI{ID: c.id}
	if len(c.id) == 0 {
		link = &URI{Object: c.label}
	}
	if link.Object == "" && len(link.ID) == 0 {
		return nil, fmt.Errorf("certificate has neither id nor label to find its key by")
	}
	objs, err := findObjects(w, objectTemplate(pkcs11.CKO_PRIVATE_KEY, link), 2)
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("%d private keys %s", len(objs), nameOf(link))
	}
	k, err := e.loadKey(w, objs[0], pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, err
	}
	if !samePublic(c.cert.PublicKey, k.Public()) {
		return nil, fmt.Errorf("certificate %q (id %x) certifies another key than the private key %s", c.label, c.id, nameOf(link))
	}
	return k, nil
}

// issuers returns leaf's DER followed by the certificates of group that
// issued it, in order, as far as the chain goes.
func issuers(leaf storedCert, group []storedCert) [][]byte {
	chain := [][]byte{leaf.der}
	used := make([]bool, len(group))
	cur := leaf.cert
	for !bytes.Equal(cur.RawIssuer, cur.RawSubject) {
		next := -1
		for i, c := range group {
			if !used[i] && c.cert != nil && !bytes.Equal(c.der, leaf.der) &&
				bytes.Equal(c.cert.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c.cert) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		chain = append(chain, group[next].der)
		cur = group[next].cert
	}
	return chain
}

// ImportCertificate stores chain, DER certificates with the leaf first,
// beside key: as X.509 certificate objects with the key's CKA_ID, the leaf
// with the key's label and the certificate i after it labelled
// "LABEL-caI", token objects when the key is one. FindCertificate finds
// them again by the key's URI, label or id. A chain that is empty or not
// DER, a leaf that certifies another key, a key without CKA_ID and a key
// that has certificates already (Delete them with
// DeleteOptions.Certificates first) are refused with an error wrapping
// offload.ErrInvalid, and nothing is stored; a certificate the token
// refuses undoes the ones stored before it.
func (e *Engine) ImportCertificate(ctx context.Context, key *offload.Key, chain [][]byte) error {
	h, err := e.handleOf(key)
	if err != nil {
		return err
	}
	if len(chain) == 0 {
		return fmt.Errorf("pkcs11: an empty certificate chain: %w", offload.ErrInvalid)
	}
	if len(h.id) == 0 {
		return fmt.Errorf("pkcs11: key %q has no CKA_ID to store certificates beside: %w", h.label, offload.ErrInvalid)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("pkcs11: certificate %d of the chain is not DER: %v: %w", i, err, offload.ErrInvalid)
		}
		certs[i] = c
	}
	if !samePublic(certs[0].PublicKey, key.Public()) {
		return fmt.Errorf("pkcs11: the leaf certificate certifies another key than %s: %w", h.name, offload.ErrInvalid)
	}
	templates := make([]func(token bool) []*pkcs11.Attribute, len(certs))
	for i, c := range certs {
		label := h.label
		if i > 0 {
			label = fmt.Sprintf("%s-ca%d", h.label, i)
		}
		serial, err := asn1.Marshal(c.SerialNumber)
		if err != nil {
			return fmt.Errorf("pkcs11: certificate %d: serial number: %v: %w", i, err, offload.ErrInvalid)
		}
		id, value := bytes.Clone(h.id), bytes.Clone(chain[i])
		templates[i] = func(token bool) []*pkcs11.Attribute {
			return []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
				pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, c.RawSubject),
				pkcs11.NewAttribute(pkcs11.CKA_ISSUER, c.RawIssuer),
				pkcs11.NewAttribute(pkcs11.CKA_SERIAL_NUMBER, serial),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE, value),
			}
		}
	}
	f := submitOnce(e, ctx, offload.OpSign, false, offload.Call{}, func(w *worker) (struct{}, error) {
		e.names.Lock()
		defer e.names.Unlock()
		obj, err := e.object(w, h)
		if err != nil {
			return struct{}{}, err
		}
		a, err := attrs(w, obj, pkcs11.CKA_TOKEN)
		if err != nil {
			return struct{}{}, err
		}
		token := len(a[pkcs11.CKA_TOKEN]) == 1 && a[pkcs11.CKA_TOKEN][0] != 0
		have, err := findObjects(w, objectTemplate(pkcs11.CKO_CERTIFICATE, &URI{ID: h.id}), 1)
		if err != nil {
			return struct{}{}, err
		}
		if len(have) > 0 {
			return struct{}{}, fmt.Errorf("pkcs11: key %s has certificates already; delete them first: %w", h.name, offload.ErrInvalid)
		}
		made := make([]pkcs11.ObjectHandle, 0, len(templates))
		for i, t := range templates {
			o, err := w.p.CreateObject(w.sh, t(token))
			if err != nil {
				for _, m := range made {
					w.p.DestroyObject(w.sh, m)
				}
				return struct{}{}, fmt.Errorf("pkcs11: storing certificate %d of the chain: %w", i, ckErr("C_CreateObject", err))
			}
			made = append(made, o)
		}
		return struct{}{}, nil
	})
	_, err = f.Wait(ctx)
	return err
}
