package soft_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
)

func Example() {
	eng, err := soft.New(soft.Options{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	key, err := eng.ImportKey(priv)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	digest := sha256.Sum256([]byte("hello, offload"))
	f := eng.Sign(ctx, &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256})
	sig, err := f.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.Type(), key.Bits(), ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig))
	// Output: ECDSA-P256 256 true
}
