package qat_test

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
	"github.com/offcrypt/offcrypt/offload/qat"
)

func Example() {
	ctx := context.Background()
	eng, err := qat.Open(ctx, qat.Config{}) // tier 1: the modelled card
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
	digest := sha256.Sum256([]byte("hello, offload"))
	sig, err := eng.Sign(ctx, &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}).Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig), eng.Info().Supports(offload.Random))
	// Output: true false
}
