//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// tool runs pkcs11-tool on the main token, logged in, and returns its
// output.
func tool(t *testing.T, args ...string) string {
	t.Helper()
	bin := needPkcs11Tool(t)
	args = append([]string{"--module", softhsmModule, "--token-label", mainToken, "--login", "--pin", mainPIN}, args...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// listed reports whether pkcs11-tool -O lists an object of kind ("Private
// Key Object", "Public Key Object", "Certificate Object") with the label
// and hex id.
func listed(t *testing.T, kind, label, id string) bool {
	t.Helper()
	for _, obj := range strings.Split("\n"+tool(t, "-O"), "\n"+kind)[1:] {
		// An object's lines run up to the next unindented line.
		lines := strings.Split(obj, "\n")
		var gotLabel, gotID string
		for _, l := range lines[1:] {
			if l != "" && l[0] != ' ' && l[0] != '\t' {
				break
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "label:"); ok {
				gotLabel = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ID:"); ok {
				gotID = strings.TrimSpace(v)
			}
		}
		if gotLabel == label && gotID == id {
			return true
		}
	}
	return false
}

// p11tool runs GnuTLS's p11tool on the main token's module, logged in.
func p11tool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("p11tool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("p11tool not found: install gnutls-bin")
		}
		t.Skip("p11tool not found: install gnutls-bin")
	}
	args = append([]string{"--provider", softhsmModule, "--login", "--set-pin", mainPIN}, args...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("p11tool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func signsWith(t *testing.T, e *Engine, k *offload.Key) error {
	t.Helper()
	msg := []byte("store")
	sig, err := wait(t, e.Sign(context.Background(), &offload.SignRequest{Key: k, Digest: hashOf(crypto.SHA256, msg), Opts: crypto.SHA256}))
	if err == nil {
		verify(t, k.Public(), msg, crypto.SHA256, sig)
	}
	return err
}

// TestGenerateNamed: a key generated with a label and an ID says both, its
// name is a URI that FindKey, pkcs11-tool and p11tool understand, and a
// session key stays out of other processes' sight.
func TestGenerateNamed(t *testing.T) {
	e := openEngine(t, 2)
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		opts    KeyOptions
		wantURI string // the name, less the token's serial
		id      string // as pkcs11-tool prints it
	}{
		{"ecdsa", KeyOptions{Type: offload.KeyECDSAP256, Label: "named ec", ID: []byte{0xa1, 0xb2}}, "pkcs11:token=offcrypt;object=named%20ec;id=%A1%B2;type=private", "a1b2"},
		{"rsa", KeyOptions{Type: offload.KeyRSA, Label: "named-rsa", ID: []byte("rsa/1")}, "pkcs11:token=offcrypt;object=named-rsa;id=rsa%2F1;type=private", "7273612f31"},
		{"aes", KeyOptions{Type: offload.KeyAES, Bits: 128, Label: "named-aes", ID: []byte{7}}, "pkcs11:token=offcrypt;object=named-aes;id=%07;type=secret-key", "07"},
		{"session", KeyOptions{Type: offload.KeyECDSAP256, Label: "named-session", ID: []byte{8}, Session: true}, "pkcs11:token=offcrypt;object=named-session;id=%08;type=private", "08"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.Generate(ctx, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			u, err := e.KeyURI(k)
			if err != nil {
				t.Fatal(err)
			}
			if u.Object != tt.opts.Label || !bytes.Equal(u.ID, tt.opts.ID) {
				t.Fatalf("KeyURI says label %q id %x", u.Object, u.ID)
			}
			if u.Serial == "" || u.String() != k.Name() {
				t.Fatalf("URI %s, Name %s", u, k.Name())
			}
			u.Serial = ""
			if u.String() != tt.wantURI {
				t.Fatalf("name %s, want %s (with serial=)", u, tt.wantURI)
			}
			again, err := e.FindKey(ctx, k.Name())
			if err != nil {
				t.Fatalf("FindKey(%s): %v", k.Name(), err)
			}
			if again.Name() != k.Name() || again.Type() != k.Type() {
				t.Fatalf("found %s (%v)", again.Name(), again.Type())
			}
			if pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool }); ok && !pub.Equal(again.Public()) {
				t.Fatal("found another public key")
			}
			kind := "Private Key Object"
			if tt.opts.Type == offload.KeyAES {
				kind = "Secret Key Object"
			}
			if got := listed(t, kind, tt.opts.Label, tt.id); got == tt.opts.Session {
				t.Fatalf("pkcs11-tool -O lists it: %v, want %v", got, !tt.opts.Session)
			}
			if tt.opts.Session {
				return
			}
			if out := p11tool(t, "--list-all", k.Name()); !strings.Contains(out, "Label: "+tt.opts.Label) || strings.Count(out, "URL: ") != 1 {
				t.Fatalf("p11tool --list-all %s:\n%s", k.Name(), out)
			}
		})
	}
}

// TestGenerateRefusals: names that are taken or out of bounds are refused
// before anything is made.
func TestGenerateRefusals(t *testing.T) {
	e := openEngine(t, 1)
	ctx := context.Background()
	if _, err := e.Generate(ctx, KeyOptions{Type: offload.KeyECDSAP256, Label: "taken", ID: []byte("taken")}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts KeyOptions
	}{
		{"label taken", KeyOptions{Label: "taken", ID: []byte("free")}},
		{"id taken", KeyOptions{Label: "free", ID: []byte("taken")}},
		{"label of a pkcs11-tool key", KeyOptions{Label: "ec256"}},
		{"id of a pkcs11-tool key", KeyOptions{ID: []byte{1}}},
		{"id longer than MaxIDLen", KeyOptions{Label: "free", ID: bytes.Repeat([]byte{9}, MaxIDLen+1)}},
		{"empty id", KeyOptions{Label: "free", ID: []byte{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Type = offload.KeyECDSAP256
			before, err := e.List(ctx, "pkcs11:")
			if err != nil {
				t.Fatal(err)
			}
			k, err := e.Generate(ctx, tt.opts)
			if !errors.Is(err, offload.ErrInvalid) || k != nil {
				t.Fatalf("key %v, err %v; want ErrInvalid", k, err)
			}
			after, err := e.List(ctx, "pkcs11:")
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("%d objects before, %d after", len(before), len(after))
			}
		})
	}
	// The longest ID is allowed.
	k, err := e.Generate(ctx, KeyOptions{Type: offload.KeyECDSAP256, ID: bytes.Repeat([]byte{9}, MaxIDLen)})
	if err != nil {
		t.Fatal(err)
	}
	if err := signsWith(t, e, k); err != nil {
		t.Fatal(err)
	}
}

func names(us []*URI) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// TestList: listing filters by type, label and id, lists what pkcs11-tool
// made, and every key's name is one FindKey finds.
func TestList(t *testing.T) {
	needPkcs11Tool(t)
	e := openEngine(t, 2)
	ctx := context.Background()
	tool(t, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "listed-by-tool", "--id", "5101")
	g, err := e.Generate(ctx, KeyOptions{Type: offload.KeyECDSAP256, Label: "listed-by-us", ID: []byte{0x51, 0x02}})
	if err != nil {
		t.Fatal(err)
	}
	serial := e.token.SerialNumber
	for _, tt := range []struct {
		filter string
		want   []string // URIs, less token and serial
		keys   bool     // ListKeys rather than List
		err    error
	}{
		{"pkcs11:object=listed-by-tool", []string{"pkcs11:object=listed-by-tool;id=Q%01;type=private", "pkcs11:object=listed-by-tool;id=Q%01;type=public"}, false, nil},
		{"pkcs11:object=listed-by-tool", []string{"pkcs11:object=listed-by-tool;id=Q%01;type=private"}, true, nil},
		{"pkcs11:id=Q%02;type=public", []string{"pkcs11:object=listed-by-us;id=Q%02;type=public"}, false, nil},
		{"pkcs11:token=offcrypt;id=Q%02", []string{"pkcs11:object=listed-by-us;id=Q%02;type=private"}, true, nil},
		{"pkcs11:object=ec-cert;type=cert", []string{"pkcs11:object=ec-cert;id=%03;type=cert"}, false, nil},
		{"pkcs11:object=nothing-here", nil, true, nil},
		{"pkcs11:object=ec-cert;type=cert", nil, true, offload.ErrInvalid},
		{"pkcs11:token=another", nil, false, offload.ErrNotFound},
		{"http://x", nil, true, offload.ErrInvalid},
	} {
		t.Run(tt.filter, func(t *testing.T) {
			var got []string
			var err error
			if tt.keys {
				got, err = e.ListKeys(ctx, tt.filter)
			} else {
				var us []*URI
				us, err = e.List(ctx, tt.filter)
				got = names(us)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v; want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.Replace(w, "pkcs11:", "pkcs11:token=offcrypt;serial="+serial+";", 1))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
			for _, n := range got {
				if !tt.keys {
					continue
				}
				if _, err := e.FindKey(ctx, n); err != nil {
					t.Fatalf("FindKey(%s): %v", n, err)
				}
			}
		})
	}
	all, err := e.ListKeys(ctx, "pkcs11:")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(all, g.Name()) {
		t.Fatalf("ListKeys lists %q, not %s", all, g.Name())
	}
}

// TestDelete: a deleted key and its public half are gone for pkcs11-tool
// too; a URI that names several objects or none deletes nothing; a key in
// use fails with ErrNotFound afterwards, on this engine and on another,
// and recovery does not bring it back.
func TestDelete(t *testing.T) {
	needPkcs11Tool(t)
	e := openEngine(t, 2)
	other := openEngine(t, 2)
	ctx := context.Background()

	k, err := e.Generate(ctx, KeyOptions{Type: offload.KeyECDSAP256, Label: "doomed", ID: []byte{0xd0}})
	if err != nil {
		t.Fatal(err)
	}
	// The other engine holds the key too, and uses it.
	ko, err := other.FindKey(ctx, k.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := signsWith(t, other, ko); err != nil {
		t.Fatal(err)
	}
	tool(t, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "twin", "--id", "d1")
	tool(t, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "twin", "--id", "d2")
	count := func() int {
		us, err := e.List(ctx, "pkcs11:")
		if err != nil {
			t.Fatal(err)
		}
		return len(us)
	}
	n := count()
	for _, tt := range []struct {
		uri string
		err error
	}{
		{"pkcs11:object=twin", offload.ErrInvalid},             // two private keys
		{"pkcs11:token=offcrypt", offload.ErrInvalid},          // neither label nor id
		{"pkcs11:object=no-such-key", offload.ErrNotFound},     // nothing
		{"pkcs11:object=doomed;type=cert", offload.ErrInvalid}, // DeleteKey deletes keys
		{"pkcs11:token=another;object=doomed", offload.ErrNotFound},
	} {
		if err := e.DeleteKey(ctx, tt.uri); !errors.Is(err, tt.err) {
			t.Errorf("DeleteKey(%s): %v; want %v", tt.uri, err, tt.err)
		}
	}
	if got := count(); got != n {
		t.Fatalf("%d objects before the refusals, %d after", n, got)
	}
	if !listed(t, "Private Key Object", "twin", "d1") || !listed(t, "Private Key Object", "twin", "d2") {
		t.Fatal("a twin is gone")
	}

	if err := e.DeleteKey(ctx, k.Name()); err != nil {
		t.Fatal(err)
	}
	if listed(t, "Private Key Object", "doomed", "d0") || listed(t, "Public Key Object", "doomed", "d0") {
		t.Fatal("pkcs11-tool -O still lists the deleted key")
	}
	if got := count(); got != n-2 {
		t.Fatalf("%d objects after deleting a key pair, want %d", got, n-2)
	}
	for i := range 2 { // twice: the first failure's recovery must not resurrect it
		if err := signsWith(t, e, k); !errors.Is(err, offload.ErrNotFound) {
			t.Fatalf("sign %d on the deleting engine: %v; want ErrNotFound", i, err)
		}
		if err := signsWith(t, other, ko); !errors.Is(err, offload.ErrNotFound) {
			t.Fatalf("sign %d on another engine: %v; want ErrNotFound", i, err)
		}
	}
	if _, err := e.FindKey(ctx, k.Name()); !errors.Is(err, offload.ErrNotFound) {
		t.Fatalf("FindKey after delete: %v", err)
	}
	// One twin by its id, with only the private object named: its public
	// object stays.
	if err := e.Delete(ctx, "pkcs11:object=twin;id=%D1;type=private", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if listed(t, "Private Key Object", "twin", "d1") || !listed(t, "Public Key Object", "twin", "d1") || !listed(t, "Private Key Object", "twin", "d2") {
		t.Fatal("Delete took more or less than the one object its URI names")
	}
}

// testCA is a throwaway certificate authority.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{key, cert, der}
}

// issue certifies pub, as a CA when ca is set.
func (c *testCA) issue(t *testing.T, name string, pub crypto.PublicKey, ca bool) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: ca, BasicConstraintsValid: true,
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCertificates: a certificate pkcs11-tool wrote is found by URI with its
// key; a chain offcrypt imported is read back by pkcs11-tool byte for byte
// and found again in order; bad chains are refused and store nothing.
func TestCertificates(t *testing.T) {
	needPkcs11Tool(t)
	e := openEngine(t, 2)
	ctx := context.Background()

	// Written by pkcs11-tool at setup: ec-cert, id 03.
	chain, key, err := e.FindCertificate(ctx, "pkcs11:token=offcrypt;object=ec-cert;type=cert")
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 1 || key.Type() != offload.KeyECDSAP384 {
		t.Fatalf("%d certificates, key %v", len(chain), key.Type())
	}
	if want, _ := os.ReadFile(filepath.Join(hsm.dir, "cert.der")); !bytes.Equal(chain[0], want) {
		t.Fatal("the certificate is not the one pkcs11-tool wrote")
	}
	if err := signsWith(t, e, key); err != nil {
		t.Fatal(err)
	}

	// Written by offcrypt: a leaf and an intermediate beside a new key.
	root := newTestCA(t, "root")
	ica := &testCA{}
	ica.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ica.der = root.issue(t, "intermediate", &ica.key.PublicKey, true)
	ica.cert, _ = x509.ParseCertificate(ica.der)
	k, err := e.Generate(ctx, KeyOptions{Type: offload.KeyECDSAP256, Label: "web", ID: []byte{0xce}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := ica.issue(t, "web.test", k.Public(), false)
	stranger := ica.issue(t, "stranger.test", &root.key.PublicKey, false)
	for _, tt := range []struct {
		name  string
		key   *offload.Key
		chain [][]byte
	}{
		{"empty chain", k, nil},
		{"leaf not DER", k, [][]byte{[]byte("-----BEGIN CERTIFICATE-----")}},
		{"intermediate not DER", k, [][]byte{leaf, {0x30, 0x03, 1, 2, 3}}},
		{"leaf of another key", k, [][]byte{stranger, ica.der}},
		{"nil key", nil, [][]byte{leaf}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.ImportCertificate(ctx, tt.key, tt.chain); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("err %v; want ErrInvalid", err)
			}
			if us, _ := e.List(ctx, "pkcs11:id=%CE;type=cert"); len(us) != 0 {
				t.Fatalf("stored %q", names(us))
			}
		})
	}
	if err := e.ImportCertificate(ctx, k, [][]byte{leaf, ica.der}); err != nil {
		t.Fatal(err)
	}
	if err := e.ImportCertificate(ctx, k, [][]byte{leaf}); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("a second import: %v; want ErrInvalid", err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		label string
		want  []byte
	}{{"web", leaf}, {"web-ca1", ica.der}} {
		out := filepath.Join(dir, c.label+".der")
		tool(t, "--read-object", "--type", "cert", "--label", c.label, "--output-file", out)
		if got, _ := os.ReadFile(out); !bytes.Equal(got, c.want) {
			t.Fatalf("pkcs11-tool reads back %d bytes for %s, not the %d stored", len(got), c.label, len(c.want))
		}
	}
	for _, uri := range []string{k.Name(), "pkcs11:object=web;type=cert", "pkcs11:id=%CE", "pkcs11:object=web"} {
		chain, key, err := e.FindCertificate(ctx, uri)
		if err != nil {
			t.Fatalf("FindCertificate(%s): %v", uri, err)
		}
		if len(chain) != 2 || !bytes.Equal(chain[0], leaf) || !bytes.Equal(chain[1], ica.der) {
			t.Fatalf("FindCertificate(%s): a chain of %d, not leaf and intermediate in order", uri, len(chain))
		}
		if key.Name() != k.Name() {
			t.Fatalf("FindCertificate(%s): key %s", uri, key.Name())
		}
	}
	for _, tt := range []struct {
		uri string
		err error
	}{
		{"pkcs11:object=no-such-cert", offload.ErrNotFound},
		{"pkcs11:object=web-ca1", offload.ErrNotFound}, // no key certified by it
		{"pkcs11:object=web;type=public", offload.ErrInvalid},
		{"pkcs11:token=offcrypt;type=cert", offload.ErrInvalid}, // two leaves with keys
	} {
		if _, _, err := e.FindCertificate(ctx, tt.uri); !errors.Is(err, tt.err) {
			t.Errorf("FindCertificate(%s): %v; want %v", tt.uri, err, tt.err)
		}
	}

	// Deleting the key with its certificates takes the whole chain.
	if err := e.Delete(ctx, k.Name(), DeleteOptions{PublicKey: true, Certificates: true}); err != nil {
		t.Fatal(err)
	}
	if us, _ := e.List(ctx, "pkcs11:id=%CE"); len(us) != 0 {
		t.Fatalf("left behind: %q", names(us))
	}
}

// TestStoreThroughP11Kit: through p11-kit's remote server, keys are made
// with a name, listed, found, given a certificate and deleted.
func TestStoreThroughP11Kit(t *testing.T) {
	needP11Kit(t)
	startP11Server(t)
	e := openRemote(t, Config{MaxInFlight: 2})
	t.Cleanup(func() { e.Close() })
	ctx := context.Background()
	k, err := e.Generate(ctx, KeyOptions{Type: offload.KeyECDSAP256, Label: "remote-named", ID: []byte{0x7e}})
	if err != nil {
		t.Fatal(err)
	}
	names, err := e.ListKeys(ctx, "pkcs11:object=remote-named")
	if err != nil || len(names) != 1 || names[0] != k.Name() {
		t.Fatalf("ListKeys: %q, %v", names, err)
	}
	found, err := e.FindKey(ctx, names[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := signsWith(t, e, found); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "remote-ca")
	leaf := ca.issue(t, "remote.test", k.Public(), false)
	if err := e.ImportCertificate(ctx, k, [][]byte{leaf, ca.der}); err != nil {
		t.Fatal(err)
	}
	chain, key, err := e.FindCertificate(ctx, "pkcs11:object=remote-named;type=cert")
	if err != nil || len(chain) != 2 || key.Name() != k.Name() {
		t.Fatalf("FindCertificate: %d certificates, %v", len(chain), err)
	}
	if err := e.Delete(ctx, k.Name(), DeleteOptions{PublicKey: true, Certificates: true}); err != nil {
		t.Fatal(err)
	}
	if us, err := e.List(ctx, "pkcs11:id=%7E"); err != nil || len(us) != 0 {
		t.Fatalf("after Delete: %q, %v", names, err)
	}
	if err := signsWith(t, e, found); !errors.Is(err, offload.ErrNotFound) {
		t.Fatalf("sign with the deleted key: %v", err)
	}
}
