package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"log"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/pkcs11"
)

func ExampleParseURI() {
	u, err := pkcs11.ParseURI("pkcs11:token=web;object=tls-key;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Token, u.Object, u.ID, u.Type, u.ModulePath)

	_, err = pkcs11.ParseURI("pkcs11:object=a;object=b")
	fmt.Println(err)
	// Output:
	// web tls-key [1 2] private /usr/lib/softhsm/libsofthsm2.so
	// pkcs11: uri: attribute "object" given twice: offload: invalid input
}

// Open a token, find a key by URI and sign with it. (Needs a token; not run
// as a test.)
func ExampleOpen() {
	ctx := context.Background()
	eng, err := pkcs11.Open(ctx, pkcs11.Config{
		Module:     "/usr/lib/softhsm/libsofthsm2.so",
		TokenLabel: "web",
		PIN:        func(context.Context) ([]byte, error) { return []byte("1234"), nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	key, err := eng.FindKey(ctx, "pkcs11:token=web;object=tls-key;type=private")
	if err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello"))
	sig, err := eng.Sign(ctx, &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}).Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(sig) > 0)
}

// Make a key with a name of the caller's, store the certificate a CA
// issued for it beside it, and find both again by URI, as a TLS server does
// at start (tlsconfig.Load). (Needs a token; not run as a test.)
func ExampleEngine_Generate() {
	ctx := context.Background()
	eng, err := pkcs11.Open(ctx, pkcs11.Config{
		Module:     "/usr/lib/softhsm/libsofthsm2.so",
		TokenLabel: "web",
		PIN:        func(context.Context) ([]byte, error) { return []byte("1234"), nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	key, err := eng.Generate(ctx, pkcs11.KeyOptions{Type: offload.KeyECDSAP256, Label: "tls", ID: []byte{1}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.Name()) // pkcs11:token=web;serial=…;object=tls;id=%01;type=private

	var chain [][]byte // the leaf a CA issued for key.Public(), then its intermediates
	if err := eng.ImportCertificate(ctx, key, chain); err != nil {
		log.Fatal(err)
	}
	names, err := eng.ListKeys(ctx, "pkcs11:object=tls")
	if err != nil {
		log.Fatal(err)
	}
	chain, key, err = eng.FindCertificate(ctx, names[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(chain), key.Type())
}
