package signer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"log"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

// Sign with a key held by the software engine, blocking and asynchronously,
// and verify with the standard library.
func Example() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	key, err := eng.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		log.Fatal(err)
	}
	s, err := signer.New(key)
	if err != nil {
		log.Fatal(err)
	}
	pub := s.Public().(*ecdsa.PublicKey)
	digest := sha256.Sum256([]byte("hello, world"))

	// What crypto/tls and crypto/x509 call.
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Sign verified:", ecdsa.VerifyASN1(pub, digest[:], sig))

	// The engine hashes the message itself.
	sig, err = s.SignMessage(rand.Reader, []byte("hello, world"), crypto.SHA256)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("SignMessage verified:", ecdsa.VerifyASN1(pub, digest[:], sig))

	// A future, for callers that fan out.
	ctx := context.Background()
	f := s.SignAsync(ctx, digest[:], crypto.SHA256)
	sig, err = f.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("SignAsync verified:", ecdsa.VerifyASN1(pub, digest[:], sig))
	// Output:
	// Sign verified: true
	// SignMessage verified: true
	// SignAsync verified: true
}

// Decrypt RSA-OAEP with a label, with an RSA key imported into the software
// engine. Only RSA keys make a Decrypter.
func ExampleNewDecrypter() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	key, err := eng.ImportKey(priv)
	if err != nil {
		log.Fatal(err)
	}
	d, err := signer.NewDecrypter(key)
	if err != nil {
		log.Fatal(err)
	}
	label := []byte("session")
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, d.Public().(*rsa.PublicKey), []byte("secret"), label)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := d.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: label})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", pt)

	ecKey, err := eng.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		log.Fatal(err)
	}
	_, err = signer.NewDecrypter(ecKey)
	fmt.Println(err)
	// Output:
	// secret
	// signer: offload: invalid input: ECDSA-P256 keys cannot decrypt; only RSA keys make a Decrypter
}
