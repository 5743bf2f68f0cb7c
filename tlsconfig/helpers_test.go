package tlsconfig_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// pki is a test certificate authority.
type pki struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pool   *x509.CertPool
	pemDir string
	caFile string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "offcrypt test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))
	cert := must(x509.ParseCertificate(der))
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", der)
	return &pki{cert: cert, key: key, pool: pool, pemDir: dir, caFile: caFile}
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 100}

// leaf issues a certificate for pub, valid for names (DNS names or IPs),
// for servers and clients.
func (p *pki) leaf(t testing.TB, pub crypto.PublicKey, names ...string) []byte {
	t.Helper()
	serial.Lock()
	serial.n++
	sn := serial.n
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: "offcrypt test leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return must(x509.CreateCertificate(rand.Reader, tmpl, p.cert, pub, p.key))
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// keyKind names the test keys.
type keyKind string

const (
	kP256    keyKind = "ECDSA-P256"
	kP384    keyKind = "ECDSA-P384"
	kRSA     keyKind = "RSA-2048"
	kEd25519 keyKind = "Ed25519"
)

var (
	stdKeysMu sync.Mutex
	stdKeys   = map[keyKind]crypto.Signer{}
)

// stdKey returns a process-wide private key of kind k (RSA generation is
// slow under the race detector).
func stdKey(k keyKind) crypto.Signer {
	stdKeysMu.Lock()
	defer stdKeysMu.Unlock()
	if s, ok := stdKeys[k]; ok {
		return s
	}
	var s crypto.Signer
	switch k {
	case kP256:
		s = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	case kP384:
		s = must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	case kRSA:
		s = must(rsa.GenerateKey(rand.Reader, 2048))
	case kEd25519:
		_, priv := must2(ed25519.GenerateKey(rand.Reader))
		s = priv
	default:
		panic("unknown key kind " + k)
	}
	stdKeys[k] = s
	return s
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func newEngine(t testing.TB, o soft.Options) *soft.Engine {
	t.Helper()
	eng, err := soft.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// offloaded imports priv into imp and returns its signer: a
// *signer.Decrypter for RSA keys when decrypter is set.
func offloaded(t testing.TB, imp offload.Importer, priv crypto.Signer, decrypter bool) tlsconfig.ContextSigner {
	t.Helper()
	key, err := imp.ImportKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if decrypter {
		d, err := signer.NewDecrypter(key)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	s, err := signer.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder is a ContextSigner that remembers the options of every
// signature, to tell which scheme a handshake used.
type recorder struct {
	tlsconfig.ContextSigner
	mu   sync.Mutex
	opts []crypto.SignerOpts
	ctxs []context.Context
}

func (r *recorder) note(ctx context.Context, o crypto.SignerOpts) {
	r.mu.Lock()
	r.opts = append(r.opts, o)
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
}

func (r *recorder) SignContext(ctx context.Context, d []byte, o crypto.SignerOpts) ([]byte, error) {
	r.note(ctx, o)
	return r.ContextSigner.SignContext(ctx, d, o)
}

func (r *recorder) SignMessageContext(ctx context.Context, m []byte, o crypto.SignerOpts) ([]byte, error) {
	r.note(ctx, o)
	return r.ContextSigner.SignMessageContext(ctx, m, o)
}

// last returns how the last signature was made: "PSS-SHA256",
// "PKCS1-SHA384", "ECDSA-SHA256", "Ed25519", or "" if none.
func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.opts) == 0 {
		return ""
	}
	o := r.opts[len(r.opts)-1]
	switch r.Key().Type() {
	case offload.KeyRSA:
		if p, ok := o.(*rsa.PSSOptions); ok {
			return fmt.Sprintf("PSS-%v", p.Hash)
		}
		return fmt.Sprintf("PKCS1-%v", o.HashFunc())
	case offload.KeyEd25519:
		return "Ed25519"
	}
	return fmt.Sprintf("ECDSA-%v", o.HashFunc())
}

// limited is an engine that can do only some of what soft can: it wraps a
// soft engine, states fewer algorithms and refuses the others.
type limited struct {
	*soft.Engine
	algs []offload.Algorithm
}

func (l *limited) Info() offload.Info {
	i := l.Engine.Info()
	i.Name = "limited"
	i.Algorithms = slices.DeleteFunc(i.Algorithms, func(a offload.Algorithm) bool { return !slices.Contains(l.algs, a) })
	return i
}

// ImportKey imports into the soft engine and returns a key that names l as
// its engine, the soft key as its handle.
func (l *limited) ImportKey(priv any) (*offload.Key, error) {
	k, err := l.Engine.ImportKey(priv)
	if err != nil {
		return nil, err
	}
	return offload.NewKey(l, k.Type(), k.Bits(), k.Public(), k), nil
}

func (l *limited) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	p, err := req.Check()
	if err != nil {
		return offload.Failed[[]byte](err)
	}
	if alg := p.Alg; !slices.Contains(l.algs, alg) {
		return offload.Failed[[]byte](fmt.Errorf("limited: %w: %v", offload.ErrUnsupported, alg))
	}
	r := *req
	r.Key = req.Key.Handle().(*offload.Key)
	return l.Engine.Sign(ctx, &r)
}

func (l *limited) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	r := *req
	r.Key = req.Key.Handle().(*offload.Key)
	return l.Engine.Decrypt(ctx, &r)
}

var (
	_ offload.Engine   = (*limited)(nil)
	_ offload.Importer = (*limited)(nil)
)

// serve runs a TLS server on a loopback listener: each connection
// handshakes, then gets one line and is closed. Handshake errors go to the
// returned channel (buffered, extra ones dropped). Stopped at cleanup, which
// waits for every connection's goroutine.
func serve(t testing.TB, cfg *tls.Config) (addr string, errs <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 64)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := tls.Server(c, cfg)
				if err := tc.HandshakeContext(ctx); err != nil {
					select {
					case ch <- err:
					default:
					}
					return
				}
				fmt.Fprintf(tc, "hello over %s\n", tls.VersionName(tc.ConnectionState().Version))
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		testwait.Group(t, &wg, "the test server's connections to end")
	})
	return ln.Addr().String(), ch
}

// dial makes a Go client handshake with addr and reads the server's line.
func dial(ctx context.Context, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	buf := make([]byte, 64)
	n, err := tc.Read(buf)
	if n == 0 && err != nil {
		return tc.ConnectionState(), fmt.Errorf("read: %w", err)
	}
	return tc.ConnectionState(), nil
}

// soft0 is the soft engine's default configuration.
var soft0 = soft.Options{}
