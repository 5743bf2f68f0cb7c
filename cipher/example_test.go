package cipher_test

import (
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
