//go:build cgo

package tlsconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/softhsm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/pkcs11"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// TestServerFromToken: curl completes a TLS 1.3 handshake with a server
// whose certificate, chain and key all come from a SoftHSM2 token through
// one Load call on a URI, and whose signature is made on the token.
func TestServerFromToken(t *testing.T) {
	curl := needTool(t, "curl")
	softhsm.Start(t, softhsm.Token{Label: "web", PIN: "1234"})
	ctx := context.Background()
	eng, err := pkcs11.Open(ctx, pkcs11.Config{
		Module: softhsm.Module, TokenLabel: "web", MaxInFlight: 2,
		PIN: func(context.Context) ([]byte, error) { return []byte("1234"), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
	})

	// Provisioning, as an operator does it once: a key made on the token,
	// and the chain a CA issued for it stored beside it.
	key, err := eng.Generate(ctx, pkcs11.KeyOptions{Type: offload.KeyECDSAP256, Label: "tls", ID: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	root := newPKI(t)
	icaKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	icaDER := must(x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "offcrypt test intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, root.cert, &icaKey.PublicKey, root.key))
	ica := &pki{cert: must(x509.ParseCertificate(icaDER)), key: icaKey}
	leaf := ica.leaf(t, key.Public(), "localhost")
	if err := eng.ImportCertificate(ctx, key, [][]byte{leaf, icaDER}); err != nil {
		t.Fatal(err)
	}

	// Serving: one call from the URI.
	cert, err := tlsconfig.Load(ctx, eng, "pkcs11:token=web;object=tls", signer.New)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 {
		t.Fatalf("a chain of %d certificates from the token, want leaf and intermediate", len(cert.Certificate))
	}
	port := httpsServer(t, tlsconfig.Server(cert))
	before := eng.Stats().Op(offload.OpSign).Completed
	out, err := run(curl, "-sS", "--fail", "--max-time", "20", "--tlsv1.3", "--tls-max", "1.3", "--cacert", root.caFile,
		"--resolve", "localhost:"+port+":127.0.0.1", "https://localhost:"+port+"/")
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if !strings.Contains(out, greeting+" over TLS 1.3") {
		t.Fatalf("curl said %q", out)
	}
	if after := eng.Stats().Op(offload.OpSign).Completed; after <= before {
		t.Fatalf("no signature on the token: completed %d -> %d", before, after)
	}
}
