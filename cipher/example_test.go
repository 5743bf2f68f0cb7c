package cipher_test

import (
	"context"
	"crypto/cipher"
	"fmt"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/offload/soft"
)

func Example() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	key, err := eng.ImportKey(make([]byte, 16)) // an AES-128 key, held by the engine
	if err != nil {
		panic(err)
	}

	var aead cipher.AEAD
	aead, err = ocipher.NewGCM(key)
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, aead.NonceSize())
	sealed := aead.Seal(nil, nonce, []byte("hello"), nil)
	fmt.Printf("%x\n", sealed)

	sealed[0] ^= 1
	_, err = aead.Open(nil, nonce, sealed, nil)
	fmt.Println(err)
	// Output:
	// 6bedb6a20ffc05f3475d29034caa1cc8fa3628c39f
	// cipher: message authentication failed
}

// The context- and error-returning forms are methods of the type NewGCM
// returns, beside the cipher.AEAD ones: a device failure, a context that
// ends, or a message longer than the engine takes come back as errors.
func ExampleGCM_SealContext() {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	key, err := eng.ImportKey(make([]byte, 16))
	if err != nil {
		panic(err)
	}
	g, err := ocipher.NewGCM(key) // a *ocipher.GCM, which is a cipher.AEAD
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	nonce := make([]byte, g.NonceSize())
	big := make([]byte, 16<<20) // any length crypto/cipher takes
	sealed, err := g.SealContext(ctx, nil, nonce, big, nil)
	if err != nil {
		panic(err)
	}
	opened, err := g.OpenContext(ctx, nil, nonce, sealed, nil)
	fmt.Println(len(sealed), len(opened), err)
	// Output:
	// 16777232 16777216 <nil>
}
