package tlsconfig_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/rng"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

func clientConfig(p *pki, name string, vers uint16) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: name, MinVersion: vers, MaxVersion: vers}
}

func certFor(t *testing.T, p *pki, s tlsconfig.ContextSigner, names ...string) tls.Certificate {
	t.Helper()
	cert, err := tlsconfig.Certificate([][]byte{p.leaf(t, s.Public(), names...)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestServerChoice: GetCertificate picks by server name, wildcards
// included, and by what the client can verify, falling back to the first.
func TestServerChoice(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	ec := certFor(t, p, offloaded(t, eng, stdKey(kP256), false), "a.test", "*.wild.test")
	rsaCert := certFor(t, p, offloaded(t, eng, stdKey(kRSA), true), "a.test")
	ed := certFor(t, p, offloaded(t, eng, stdKey(kEd25519), false), "b.test")
	addr, _ := serve(t, tlsconfig.Server(ec, rsaCert, ed))

	rsaOnly := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	tests := []struct {
		name   string
		sni    string
		vers   uint16
		suites []uint16
		want   tls.Certificate
	}{
		{"exact", "a.test", tls.VersionTLS13, nil, ec},
		{"wildcard", "x.wild.test", tls.VersionTLS13, nil, ec},
		{"second name", "b.test", tls.VersionTLS13, nil, ed},
		{"by key type", "a.test", tls.VersionTLS12, rsaOnly, rsaCert},
		{"no name falls back to the first", "", tls.VersionTLS13, nil, ec},
		{"unknown name falls back to the first", "nobody.test", tls.VersionTLS13, nil, ec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientConfig(p, tt.sni, tt.vers)
			cfg.CipherSuites = tt.suites
			var got []byte
			cfg.InsecureSkipVerify = true // the fallbacks do not match the name
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				got = cs.PeerCertificates[0].Raw
				return nil
			}
			if _, err := dial(context.Background(), addr, cfg); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want.Leaf.Raw) {
				t.Errorf("server sent %v's certificate", whose(got, ec, rsaCert, ed))
			}
		})
	}
}

func whose(raw []byte, certs ...tls.Certificate) string {
	for _, c := range certs {
		if slices.Equal(raw, c.Leaf.Raw) {
			return c.Leaf.PublicKeyAlgorithm.String()
		}
	}
	return "an unknown"
}

// TestNoCertificates: a server with nothing to offer fails handshakes.
func TestNoCertificates(t *testing.T) {
	p := newPKI(t)
	addr, errs := serve(t, tlsconfig.Server())
	if _, err := dial(context.Background(), addr, clientConfig(p, "localhost", 0)); err == nil {
		t.Fatal("handshake without certificates succeeded")
	}
	if err := testwait.Recv(t, errs, "the server's handshake error"); !strings.Contains(err.Error(), "no certificates") {
		t.Errorf("server error %v", err)
	}
}

// TestResumption: TLS 1.3 tickets and TLS 1.2 session tickets resume
// without another signature from the engine.
func TestResumption(t *testing.T) {
	p := newPKI(t)
	for _, vers := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(vers), func(t *testing.T) {
			eng := newEngine(t, soft0)
			cert := certFor(t, p, offloaded(t, eng, stdKey(kP256), false), "localhost")
			addr, _ := serve(t, tlsconfig.Server(cert))
			cfg := clientConfig(p, "localhost", vers)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			cs, err := dial(context.Background(), addr, cfg)
			if err != nil || cs.DidResume {
				t.Fatalf("first handshake: resumed %v, err %v", cs.DidResume, err)
			}
			signed := eng.Stats().Op(offload.OpSign).Completed
			if signed != 1 {
				t.Fatalf("first handshake made %d signatures", signed)
			}
			cs, err = dial(context.Background(), addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !cs.DidResume {
				t.Error("second handshake did not resume")
			}
			if n := eng.Stats().Op(offload.OpSign).Completed; n != signed {
				t.Errorf("resumption made %d more signatures", n-signed)
			}
		})
	}
}

// TestRSAKeyExchange: a TLS 1.2 server configured for the RSA key exchange
// decrypts through the engine with a *signer.Decrypter.
func TestRSAKeyExchange(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	cert := certFor(t, p, offloaded(t, eng, stdKey(kRSA), true), "localhost")
	suites := []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
	cfg := tlsconfig.Server(cert)
	cfg.CipherSuites = suites
	addr, _ := serve(t, cfg)
	ccfg := clientConfig(p, "localhost", tls.VersionTLS12)
	ccfg.CipherSuites = suites
	cs, err := dial(context.Background(), addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	if cs.CipherSuite != suites[0] {
		t.Fatalf("negotiated %s", tls.CipherSuiteName(cs.CipherSuite))
	}
	if n := eng.Stats().Op(offload.OpDecrypt).Completed; n != 1 {
		t.Errorf("engine decrypted %d times, want 1", n)
	}
}

// TestNoCommonScheme: a certificate whose engine cannot do what the client
// asks for fails that handshake with an alert, and the server goes on
// serving. An RSA key on an engine without PSS cannot serve TLS 1.3.
func TestNoCommonScheme(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	lim := &limited{Engine: eng, algs: []offload.Algorithm{offload.RSAPKCS1v15}}
	rec := &recorder{ContextSigner: offloaded(t, lim, stdKey(kRSA), false)}
	cert := certFor(t, p, rec, "localhost")
	if slices.Contains(cert.SupportedSignatureAlgorithms, tls.PSSWithSHA256) {
		t.Fatal("an engine without PSS advertises PSS")
	}
	addr, errs := serve(t, tlsconfig.Server(cert))

	_, err := dial(context.Background(), addr, clientConfig(p, "localhost", tls.VersionTLS13))
	if err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Fatalf("TLS 1.3 handshake: err = %v, want a handshake failure alert", err)
	}
	if err := testwait.Recv(t, errs, "the server's handshake error"); !strings.Contains(err.Error(), "signature algorithms") {
		t.Errorf("server error %v", err)
	}
	if n := eng.Stats().Op(offload.OpSign).Submitted; n != 0 {
		t.Errorf("%d signatures were sent to the engine", n)
	}

	// The server still serves a client it can sign for.
	if _, err := dial(context.Background(), addr, clientConfig(p, "localhost", tls.VersionTLS12)); err != nil {
		t.Fatalf("TLS 1.2 handshake after the failure: %v", err)
	}
	if got := rec.last(); got != "PKCS1-SHA-256" {
		t.Errorf("signed with %s, want PKCS1-SHA-256", got)
	}
}

// TestClientLeaves: a client that gives up while its signature is pending
// makes the server give up the wait for the engine, the operation counts
// as failed, its slot comes back, and no goroutine is left.
func TestClientLeaves(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft.Options{Latency: time.Second})
	rec := &recorder{ContextSigner: offloaded(t, eng, stdKey(kP256), false)}
	cert := certFor(t, p, rec, "localhost")
	leaks := leakcheck.Check(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		srvErr <- tls.Server(c, tlsconfig.Server(cert)).HandshakeContext(context.Background())
	}()

	ctx, cancel := context.WithCancel(context.Background())
	cliErr := make(chan error, 1)
	go func() {
		_, err := dial(ctx, ln.Addr().String(), clientConfig(p, "localhost", tls.VersionTLS13))
		cliErr <- err
	}()
	testwait.Until(t, "the signature to be pending", func() bool { return eng.Stats().Op(offload.OpSign).InFlight == 1 })
	cancel()
	if err := testwait.Recv(t, cliErr, "the client's handshake to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v", err)
	}
	err = testwait.Recv(t, srvErr, "the server's handshake to end")
	if err == nil || !strings.Contains(err.Error(), "client closed the connection") {
		t.Errorf("server handshake: %v, want the engine wait given up", err)
	}
	ln.Close()
	testwait.Until(t, "the engine slot to be freed", func() bool { return eng.Stats().Op(offload.OpSign).InFlight == 0 })
	st := eng.Stats().Op(offload.OpSign)
	if st.Completed != 0 || st.Failed != 1 {
		t.Errorf("engine completed %d, failed %d; want 0 and 1", st.Completed, st.Failed)
	}
	leaks()
}

// TestSignTimeout: Options.SignTimeout gives up a slow engine.
func TestSignTimeout(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft.Options{Latency: 5 * time.Second})
	cert := certFor(t, p, offloaded(t, eng, stdKey(kP256), false), "localhost")
	addr, errs := serve(t, tlsconfig.Options{SignTimeout: 50 * time.Millisecond}.Server(cert))
	if _, err := dial(context.Background(), addr, clientConfig(p, "localhost", 0)); err == nil {
		t.Fatal("handshake succeeded")
	}
	if err := testwait.Recv(t, errs, "the server's handshake error"); !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("server error %v", err)
	}
}

// TestEngineClosed: closing the engine fails the handshakes waiting on it;
// a new engine and certificate, swapped in through GetConfigForClient,
// serve again.
func TestEngineClosed(t *testing.T) {
	p := newPKI(t)
	priv := stdKey(kP256)
	leaf := p.leaf(t, priv.Public(), "localhost")
	newCert := func(eng *soft.Engine) tls.Certificate {
		c, err := tlsconfig.Certificate([][]byte{leaf}, offloaded(t, eng, priv, false))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old, err := soft.New(soft.Options{Latency: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var current atomic.Pointer[tls.Config]
	current.Store(tlsconfig.Server(newCert(old)))
	addr, errs := serve(t, &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return current.Load(), nil },
	})

	const n = 3
	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := dial(context.Background(), addr, clientConfig(p, "localhost", 0))
			results <- err
		})
	}
	testwait.Until(t, "the handshakes to wait on the engine", func() bool { return old.Stats().Op(offload.OpSign).InFlight == n })
	old.Close()
	testwait.Group(t, &wg, "the handshakes on the closed engine to fail")
	close(results)
	for err := range results {
		if err == nil {
			t.Error("a handshake succeeded on a closed engine")
		}
	}
	for range n {
		if err := testwait.Recv(t, errs, "the server's handshake error"); !strings.Contains(err.Error(), "soft sign: engine closed") {
			t.Errorf("server error %v, want the engine closed", err)
		}
	}

	fresh := newEngine(t, soft0)
	current.Store(tlsconfig.Server(newCert(fresh)))
	if _, err := dial(context.Background(), addr, clientConfig(p, "localhost", 0)); err != nil {
		t.Fatalf("handshake on the new engine: %v", err)
	}
	if n := fresh.Stats().Op(offload.OpSign).Completed; n != 1 {
		t.Errorf("new engine signed %d times", n)
	}
}

// TestHandshakeKeyTypes: the key crypto/tls sees is a Decrypter only for a
// *signer.Decrypter, so ECDSA and Ed25519 certificates keep working in
// TLS 1.2.
func TestHandshakeKeyTypes(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	tests := []struct {
		kind      keyKind
		decrypter bool
	}{{kP256, false}, {kEd25519, false}, {kRSA, false}, {kRSA, true}}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			cert := certFor(t, p, offloaded(t, eng, stdKey(tt.kind), tt.decrypter), "localhost")
			cfg := tlsconfig.Server(cert)
			got, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got.PrivateKey.(crypto.MessageSigner); !ok {
				t.Errorf("%T is not a MessageSigner", got.PrivateKey)
			}
			if _, ok := got.PrivateKey.(crypto.Decrypter); ok != tt.decrypter {
				t.Errorf("%T: Decrypter %v, want %v", got.PrivateKey, ok, tt.decrypter)
			}
			if got.PrivateKey == cert.PrivateKey {
				t.Error("GetCertificate handed out the shared key, not a per-handshake one")
			}
		})
	}
}

// TestRand: Options.Rand becomes the configuration's randomness; with an
// rng.Reader the handshake's nonces and key shares come from the engine.
func TestRand(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	cert := certFor(t, p, offloaded(t, eng, stdKey(kP256), false), "localhost")
	cfg := tlsconfig.Options{Rand: rng.New(eng)}.Server(cert)
	if cfg.Rand == nil {
		t.Fatal("Rand not set")
	}
	addr, _ := serve(t, cfg)
	if _, err := dial(context.Background(), addr, clientConfig(p, "localhost", 0)); err != nil {
		t.Fatal(err)
	}
	if n := eng.Stats().Op(offload.OpRandom).Completed; n == 0 {
		t.Error("the handshake drew no randomness from the engine")
	}
	if tlsconfig.Server(cert).Rand != nil {
		t.Error("Server sets Rand by default")
	}
}
