// Package loopback runs TLS servers on loopback for the programs that
// measure real handshakes (cmd/handshake-delay and bench/): Issue makes a
// throwaway CA and a server certificate it signs, Serve a server that
// completes a handshake on every connection.
//
// It is a helper of those programs, kept with the program it was written
// for; it is not part of the library and makes no promise of compatibility.
package loopback

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"time"
)

// Issue makes a CA named caName and a server certificate for pub, valid for
// localhost, signed by it. It returns a pool holding the CA, for clients,
// and the certificate in DER, for the server's chain.
func Issue(caName string, pub crypto.PublicKey) (*x509.CertPool, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: caName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, pub, caKey)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, leaf, nil
}

// Serve serves TLS with cfg on a loopback port: each connection completes a
// handshake, gets one byte and is closed. Handshakes run under a context
// that ends with ctx or with stop. stop closes the listener and waits for
// every connection's goroutine.
func Serve(ctx context.Context, cfg *tls.Config) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				if tc.HandshakeContext(ctx) == nil {
					tc.Write([]byte{1})
				}
			})
		}
	})
	return ln.Addr().String(), func() { cancel(); ln.Close(); wg.Wait() }, nil
}
