package tlsconfig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// An HTTPS server whose key lives in an engine. The key is imported into
// the software engine here; with an HSM or a TPM it would be looked up
// there instead, and the rest is the same.
func Example() {
	eng, _ := soft.New(soft.Options{})
	defer eng.Close()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := eng.ImportKey(priv)
	s, _ := signer.New(key)

	// A self-signed certificate for the example; in practice, the chain a
	// CA issued for the key.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.test"},
		DNSNames: []string{"example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)

	cert, err := tlsconfig.Certificate([][]byte{der}, s)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("schemes:", cert.SupportedSignatureAlgorithms)

	signed := eng.Stats().Op(offload.OpSign).Completed // the certificate's own signature
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	srv.TLS = tlsconfig.Server(cert)
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "example.test"}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%s; handshake signatures made by the engine: %d\n", body, eng.Stats().Op(offload.OpSign).Completed-signed)
	// Output:
	// schemes: [ECDSAWithP256AndSHA256 ECDSAWithP384AndSHA384 ECDSAWithP521AndSHA512]
	// hello; handshake signatures made by the engine: 1
}
