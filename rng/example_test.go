package rng_test

import (
	"fmt"
	"io"
	"log"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/rng"
)

// Read random bytes from the software engine. The engine takes at most 128
// bytes a request here, so the 1000-byte read is made of 8 requests.
func Example() {
	eng, err := soft.New(soft.Options{MaxInline: 128})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	r := rng.New(eng)
	key := make([]byte, 1000)
	if _, err := io.ReadFull(r, key); err != nil {
		log.Fatal(err)
	}
	fmt.Println("requests:", eng.Stats().Op(offload.OpRandom).Completed)
	// Output:
	// requests: 8
}
