package inject_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// Wrap any engine to make it slow and unreliable, then check that the code
// on top copes.
func ExampleWrap() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		panic(err)
	}
	errFlaky := errors.New("flaky device")
	w, err := inject.Wrap(eng, inject.Options{
		Latency: time.Millisecond,
		Faults:  []inject.Fault{{Every: 2, Err: errFlaky}},
	})
	if err != nil {
		panic(err)
	}
	defer w.Close()

	_, priv, _ := ed25519.GenerateKey(nil)
	// The wrapper has the inner engine's optional interfaces: soft imports
	// keys, so the wrapped engine does too, and its keys go through it.
	key, err := w.(offload.Importer).ImportKey(priv)
	if err != nil {
		panic(err)
	}
	fmt.Println(w.Info().Name)
	for i := range 3 {
		msg := []byte(fmt.Sprint("message ", i))
		sig, err := w.Sign(context.Background(), &offload.SignRequest{Key: key, Message: msg}).Wait(context.Background())
		switch {
		case errors.Is(err, errFlaky):
			fmt.Println(i, "injected fault")
		case err != nil:
			fmt.Println(i, err)
		default:
			fmt.Println(i, "verifies:", ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, sig))
		}
	}
	// Output:
	// inject(soft)
	// 0 verifies: true
	// 1 injected fault
	// 2 verifies: true
}
