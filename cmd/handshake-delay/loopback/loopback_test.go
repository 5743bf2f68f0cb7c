package loopback

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"testing"
)

// issue makes a P-256 key and a certificate for it with Issue.
func issue(t *testing.T) (*ecdsa.PrivateKey, *x509.CertPool, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pool, der, err := Issue("test CA", key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return key, pool, der
}

func TestIssue(t *testing.T) {
	key, pool, der := issue(t)
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Fatalf("the leaf does not verify for localhost: %v", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Fatal("the leaf carries another public key")
	}
}

// TestServe handshakes with a server from Serve, with a certificate from
// Issue, and stops it: TestMain finds any goroutine it leaves.
func TestServe(t *testing.T) {
	key, pool, der := issue(t)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	addr, stop, err := Serve(context.Background(), &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for range 2 {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 2)
		n, err := io.ReadFull(c, b)
		c.Close()
		if n != 1 || b[0] != 1 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read %d bytes %x, %v; want the server's one byte, then the end", n, b[:n], err)
		}
	}
}
