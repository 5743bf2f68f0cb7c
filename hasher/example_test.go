package hasher_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

func Example() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	h, err := hasher.New(eng, crypto.SHA256)
	if err != nil {
		panic(err)
	}
	io.Copy(h, strings.NewReader("hello, world\n"))
	fmt.Printf("%x\n", h.Sum(nil))
	// Output: 853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020
}

func ExampleHash_WriteContext() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	h, _ := hasher.New(eng, crypto.SHA512)
	ctx := context.Background()
	for _, part := range []string{"hello, ", "world\n"} {
		// A failed WriteContext leaves h as it was: retry the same part.
		if _, err := h.WriteContext(ctx, []byte(part)); err != nil {
			panic(err)
		}
	}
	sum, err := h.SumContext(ctx, nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", sum[:16])
	// Output: f65f341b35981fda842b09b2c8af9bcd
}

func ExampleDigest() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	f := hasher.Digest(context.Background(), eng, crypto.SHA256, bytes.NewReader(make([]byte, 1<<20)))
	// ... other work while the stream is hashed ...
	sum, err := f.Wait(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", sum)
	// Output: 30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58
}

// On an engine that keeps the running state on the device (here the
// QuickAssist model; a PKCS #11 token alike), New refuses and NewSession
// hashes: Final ends the device's computation, and Reset starts another.
func ExampleNewSession() {
	eng, err := qat.Open(context.Background(), qat.Config{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	if _, err := hasher.New(eng, crypto.SHA256); err != nil {
		fmt.Println("New:", errors.Is(err, offload.ErrUnsupported))
	}
	s, err := hasher.NewSession(eng, crypto.SHA256)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	io.Copy(s, strings.NewReader("abc"))
	sum, err := s.Final(context.Background(), nil)
	fmt.Printf("%x %v\n", sum, err)
	_, err = s.Final(context.Background(), nil)
	fmt.Println(err)
	// Output:
	// New: true
	// ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad <nil>
	// hasher: the device finished this hash at Final; Reset to start again: offload: invalid input
}
