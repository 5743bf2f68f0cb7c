// Command quickstart is README.md's Quick start: an HTTPS server whose TLS
// key is held by an offload engine. The README shows this file as it is,
// and a test keeps the two the same.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"time"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

func main() {
	ctx := context.Background()

	// The engine holds the keys: soft is pure Go; pkcs11.Open reaches an HSM.
	eng, err := soft.New(soft.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	key, err := eng.GenerateKey(ctx, offload.KeyECDSAP256, 0) // or eng.ImportKey(priv), or a pkcs11 FindKey
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("key:", key)  // soft ECDSA-P256 key
	s, err := signer.New(key) // crypto.Signer + crypto.MessageSigner
	if err != nil {
		log.Fatal(err)
	}

	// Sign as crypto/tls does (blocking), or start a signature and wait later.
	digest := sha256.Sum256([]byte("hello"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("signature: %d bytes\n", len(sig))
	f := s.SignAsync(ctx, digest[:], crypto.SHA256) // *offload.Future[[]byte]
	if sig, err = f.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("signature from a future: %d bytes\n", len(sig))

	// chainDER is the certificate chain, DER, leaf first: your CA's (pem.Decode
	// each block of the PEM file). Here the key signs a certificate for itself.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now(),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	leaf, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		log.Fatal(err)
	}
	chainDER := [][]byte{leaf}

	cert, err := tlsconfig.Certificate(chainDER, s) // limited to what the engine can sign
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:      "localhost:8443",
		TLSConfig: tlsconfig.Server(cert), // each handshake's context reaches the engine
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "hello over", r.Proto, "from an offloaded key")
		}),
	}
	fmt.Println("serving https://localhost:8443 (curl -k https://localhost:8443)")
	log.Fatal(srv.ListenAndServeTLS("", "")) // "", "": the certificate is in TLSConfig
}
