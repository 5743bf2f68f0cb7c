// Package gcmauth is how every engine reports an AES-GCM message that does
// not authenticate: with an error that wraps the very value crypto/cipher's
// GCM Open fails with, so that a caller who compares against the standard
// library's error (and cipher/'s adapter, which maps it to its ErrOpen)
// sees the same failure whatever engine did the work, while the device's
// own answer stays further down the chain.
//
// A ciphertext shorter than the tag is such a failure too, as it is for
// crypto/cipher, never an invalid-input error.
package gcmauth

import (
	"crypto/aes"
	"crypto/cipher"
	"math"
)

// TagSize is the AES-GCM tag every engine makes and checks.
const TagSize = 16

// MaxInput is the longest GCM input crypto/cipher takes, the bound of an
// engine that seals and opens messages of any length (offload.Info.MaxGCM):
// a plaintext of 2^32-2 blocks, with its tag when opening; on a 32-bit
// platform, any slice.
var MaxInput = int(min(uint64(math.MaxInt), (1<<32-2)*aes.BlockSize+TagSize))

// ErrOpen is the error crypto/cipher's AES-GCM Open returns when a message
// does not authenticate.
var ErrOpen = func() error {
	b, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	_, err = g.Open(nil, make([]byte, g.NonceSize()), make([]byte, g.Overhead()), nil)
	return err
}()

// Error is a GCM decryption that did not authenticate: a tampered
// ciphertext, tag or AAD, the wrong key or nonce, or a ciphertext shorter
// than the tag.
type Error struct {
	Engine string // prefixes the message, as in "pkcs11: GCM: …"
	Cause  error  // the device's own answer; nil when the engine decided alone
}

func (e *Error) Error() string {
	msg := e.Engine + ": GCM: message authentication failed"
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap gives both the standard library's authentication error and the
// device's own.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrOpen}
	}
	return []error{ErrOpen, e.Cause}
}
