package offload_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// Submit a signature, poll it without blocking, then wait for it.
func ExampleFuture() {
	eng, err := soft.New(soft.Options{Latency: 20 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	key, err := eng.GenerateKey(context.Background(), offload.KeyEd25519, 0)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	msg := []byte("hello")
	f := eng.Sign(ctx, &offload.SignRequest{Key: key, Digest: msg, Opts: crypto.Hash(0)})
	if _, err := f.Poll(); errors.Is(err, offload.ErrNotReady) {
		fmt.Println("pending")
	}
	sig, err := f.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig))
	// Output:
	// pending
	// verified: true
}

// Keep a slow device busy from one goroutine: submit many operations, then
// collect the finished ones in batches.
func ExampleQueue() {
	eng, err := soft.New(soft.Options{Latency: 10 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	key, err := eng.GenerateKey(context.Background(), offload.KeyEd25519, 0)
	if err != nil {
		log.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)

	ctx := context.Background()
	q := offload.NewQueue()
	msgs := make([][]byte, 100)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, "message %d", i)
		q.Add(eng.Sign(ctx, &offload.SignRequest{Key: key, Digest: msgs[i], Opts: crypto.Hash(0)}), i)
	}

	verified := 0
	batch := make([]offload.Completion, 16)
	for q.Len() > 0 {
		n, err := q.Collect(ctx, batch)
		if err != nil {
			log.Fatal(err)
		}
		for _, c := range batch[:n] {
			sig, err := offload.Result[[]byte](c)
			if err == nil && ed25519.Verify(pub, msgs[c.Tag.(int)], sig) {
				verified++
			}
		}
	}
	fmt.Println("verified:", verified)
	fmt.Println("overlapped:", eng.Stats().Op(offload.OpSign).MaxInFlight > 1)
	// Output:
	// verified: 100
	// overlapped: true
}

// A request that must not wait for a full engine fails at once with ErrBusy.
func ExampleCall_noWait() {
	eng, err := soft.New(soft.Options{MaxInFlight: 1, Latency: 50 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	first := eng.Random(ctx, &offload.RandomRequest{N: 16})
	_, err = eng.Random(ctx, &offload.RandomRequest{Call: offload.Call{NoWait: true}, N: 16}).Wait(ctx)
	fmt.Println(errors.Is(err, offload.ErrBusy))
	if _, err := first.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: true
}
