package compose_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/compose"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// A device beside a software engine: a small record stays in software, a
// large one goes to the device, and Record tells the caller which.
func Example() {
	ctx := context.Background()
	dev, err := qat.Open(ctx, qat.Config{}) // tier 1: the modelled card
	if err != nil {
		log.Fatal(err)
	}
	sw, err := soft.New(soft.Options{})
	if err != nil {
		log.Fatal(err)
	}
	eng, err := compose.New(dev, sw, compose.Options{Fallback: true})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	key, err := eng.(offload.Importer).ImportKey(aesKey) // into both engines
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range []int{64, 16 << 10} {
		var route compose.Route
		rctx := compose.Record(ctx, &route)
		_, err := eng.Cipher(rctx, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM,
			IV: make([]byte, 12), Input: make([]byte, n)}).Wait(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n, route.Engine.Info().Name, route.Reason)
	}
	fmt.Println(eng.Info().Name)
	// Output:
	// 64 soft small
	// 16384 qat first
	// compose(qat,soft)
}
