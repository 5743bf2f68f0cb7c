package signer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

// selfSigned makes a certificate for "test" signed by key itself.
func selfSigned(t *testing.T, key crypto.Signer) (*x509.Certificate, []byte) {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		DNSNames:     []string{"test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Fatalf("self-signature does not verify: %v", err)
	}
	return cert, der
}

// handshake runs a TLS handshake over net.Pipe between a server holding key
// and a client trusting its certificate, exchanges one message, and returns
// the negotiated state or the first error.
func handshake(t *testing.T, key crypto.Signer, version uint16, suites []uint16) (tls.ConnectionState, error) {
	t.Helper()
	cert, der := selfSigned(t, key)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   version, MaxVersion: version, CipherSuites: suites,
	}
	cliCfg := &tls.Config{RootCAs: roots, ServerName: "test", MinVersion: version, MaxVersion: version, CipherSuites: suites}

	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	// A deadline only so that a broken handshake fails instead of hanging.
	deadline := time.Now().Add(time.Minute)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)
	srv := tls.Server(c1, srvCfg)
	cli := tls.Client(c2, cliCfg)
	srvErr := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(context.Background())
		if err == nil {
			_, err = io.Copy(srv, io.LimitReader(srv, 5))
		}
		if err != nil {
			c1.Close() // unblock the client
		}
		srvErr <- err
	}()
	err := cli.HandshakeContext(context.Background())
	if err == nil {
		if _, err = cli.Write([]byte("hello")); err == nil {
			buf := make([]byte, 5)
			if _, err = io.ReadFull(cli, buf); err == nil && string(buf) != "hello" {
				t.Errorf("echo = %q", buf)
			}
		}
	}
	c2.Close()
	if serr := testwait.Recv(t, srvErr, "the server's handshake"); serr != nil {
		return tls.ConnectionState{}, serr
	}
	if err != nil {
		return tls.ConnectionState{}, err
	}
	return cli.ConnectionState(), nil
}

// TestTLS completes real crypto/tls handshakes whose server key is in the
// soft engine, and checks the engine did the work.
func TestTLS(t *testing.T) {
	e := newSoftEngine(t, soft.Options{Workers: 2})
	ecKey := generate(t, e, offload.KeyECDSAP256, 0)
	edKey := generate(t, e, offload.KeyEd25519, 0)
	rk, err := e.GenerateKey(context.Background(), offload.KeyRSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := signer.NewDecrypter(rk)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		key     crypto.Signer
		version uint16
		suites  []uint16
		op      offload.Op // the engine operation the handshake needs
	}{
		{"ECDSA/TLS1.3", ecKey, tls.VersionTLS13, nil, offload.OpSign},
		{"ECDSA/TLS1.2", ecKey, tls.VersionTLS12, nil, offload.OpSign},
		{"Ed25519/TLS1.3", edKey, tls.VersionTLS13, nil, offload.OpSign},
		{"Ed25519/TLS1.2", edKey, tls.VersionTLS12, nil, offload.OpSign},
		{"RSA/TLS1.3", rsaKey, tls.VersionTLS13, nil, offload.OpSign},
		{"RSA/TLS1.2/ECDHE", rsaKey, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, offload.OpSign},
		{"RSA/TLS1.2/RSA-kex", rsaKey, tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, offload.OpDecrypt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.Stats().Op(c.op).Completed
			st, err := handshake(t, c.key, c.version, c.suites)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != c.version {
				t.Errorf("version %x, want %x", st.Version, c.version)
			}
			if got := e.Stats().Op(c.op).Completed - before; got < 1 {
				t.Errorf("the engine completed %d %v operations during the handshake", got, c.op)
			}
		})
	}
}

// decryptingECDSA is what a single type for every key would be: an ECDSA
// signer that also claims to decrypt.
type decryptingECDSA struct{ *signer.Signer }

func (decryptingECDSA) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	return nil, offload.ErrUnsupported
}

// TestTLSRefusesDecryptingECDSA shows why Signer has no Decrypt method:
// crypto/tls's TLS 1.2 server refuses such a key.
func TestTLSRefusesDecryptingECDSA(t *testing.T) {
	e := newSoftEngine(t, soft.Options{Workers: 2})
	s := generate(t, e, offload.KeyECDSAP256, 0)
	_, err := handshake(t, decryptingECDSA{s}, tls.VersionTLS12, nil)
	if err == nil || !strings.Contains(err.Error(), "unsupported decryption key type") {
		t.Fatalf("handshake err = %v, want crypto/tls's refusal of a decrypting ECDSA key", err)
	}
	if _, err := handshake(t, s, tls.VersionTLS12, nil); err != nil {
		t.Fatalf("the plain Signer fails: %v", err)
	}
}
