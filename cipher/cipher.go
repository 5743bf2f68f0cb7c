// Package cipher runs AES in GCM, CBC and CTR modes with keys held by any
// offload engine, behind the standard library's crypto/cipher interfaces:
// cipher.AEAD, cipher.BlockMode and cipher.Stream.
//
// The package shares its name with crypto/cipher, whose interfaces it
// returns; import it under another name:
//
//	import (
//		"crypto/cipher"
//		ocipher "github.com/offcrypt/offcrypt/cipher"
//	)
//
//	aead, err := ocipher.NewGCM(key) // key: an *offload.Key of type offload.KeyAES
//	var _ cipher.AEAD = aead        // a *ocipher.GCM, with SealContext beside Seal
//
// The constructors return concrete types (*GCM, *CBC, *CTR) that implement
// crypto/cipher's interfaces and carry the context- and error-returning
// methods beside them: no type assertion is needed to reach either.
//
// # Requests
//
// GCM seals or opens a message in one request: a tag covers the whole
// message, so it cannot be split. Engines bound that request by
// offload.Info.GCMLimit, not by their payload cap: soft and pkcs11 take any
// length crypto/cipher takes (pkcs11 streams a long message to the token in
// parts), while a device that takes GCM only whole in one bounded request
// refuses longer messages (see NewGCM). CBC and CTR split their input into requests of the cap rounded down to whole
// blocks, carrying the chaining value (CBC: the last ciphertext block; CTR:
// the counter, and the unused keystream of a partial block) from one request
// to the next and from one call to the next, exactly as crypto/cipher's own
// modes would.
//
// # Misuse and failures
//
// The standard interfaces have no room for a device failure. As crypto/cipher
// does for misuse, the methods of those interfaces panic:
//
//   - on misuse, with crypto/cipher's own message: a nonce of the wrong size,
//     CBC input that is not whole blocks, output shorter than input, buffers
//     that overlap other than exactly;
//   - when a GCM plaintext is longer than the engine takes in one message
//     (GCM.MaxPlaintext), with a message that says so, as crypto/cipher's
//     Seal panics past its own limit;
//   - when the engine fails (Seal, CryptBlocks, XORKeyStream), with an error
//     wrapping the cause, because returning a wrong ciphertext or keystream
//     silently is not an option. Open returns its error instead.
//
// Each of them has a sibling that takes a context and returns every problem
// as an error instead of panicking (bad input wraps offload.ErrInvalid):
// SealContext, OpenContext, SealAsync and OpenAsync on *GCM,
// CryptBlocksContext on *CBC and XORKeyStreamContext on *CTR. Code that must
// survive a device failure uses those. A nil context is bad input, as
// everywhere in offcrypt (offload.CheckContext). When a CBC or CTR call fails part way,
// its output is unspecified and the mode's IV or counter is as it was before
// the call, so the call can be retried.
//
// An authentication failure is reported exactly as the standard library
// reports it: Open returns ErrOpen, whose message is crypto/cipher's,
// "cipher: message authentication failed".
//
// # Concurrency
//
// *GCM is safe for concurrent use. *CBC and *CTR lock themselves, but like
// any chained mode they produce meaningful output only when used by one
// goroutine at a time.
package cipher

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"unsafe"

	"github.com/offcrypt/offcrypt/offload"
)

// ErrOpen is the error Open returns when a message fails authentication: a
// tampered ciphertext, tag or additional data, a wrong key or nonce, or a
// ciphertext shorter than the tag. Its message is crypto/cipher's.
var ErrOpen = errors.New("cipher: message authentication failed")

// stdOpenErrs are the values crypto/cipher's GCM Open returns on an
// authentication failure (one from the AES implementation, one from the
// generic one). Engines in process report the failure by wrapping them.
var stdOpenErrs = func() []error {
	b, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		return nil
	}
	var errs []error
	for _, blk := range []cipher.Block{b, hidden{b}} {
		g, err := cipher.NewGCM(blk)
		if err != nil {
			continue
		}
		if _, err := g.Open(nil, make([]byte, g.NonceSize()), make([]byte, g.Overhead()), nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}()

// hidden hides the AES type from crypto/cipher, so it takes its generic path.
type hidden struct{ cipher.Block }

// isAuthFailure reports whether an engine's error is an authentication
// failure.
func isAuthFailure(err error) bool {
	if errors.Is(err, ErrOpen) {
		return true
	}
	for _, e := range stdOpenErrs {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// engineFor checks that key is an AES key whose engine can do alg, and
// returns the engine and its payload cap.
func engineFor(key *offload.Key, alg offload.Algorithm) (offload.Engine, int, error) {
	if key == nil {
		return nil, 0, fmt.Errorf("cipher: %w: nil key", offload.ErrInvalid)
	}
	if key.Type() != offload.KeyAES {
		return nil, 0, fmt.Errorf("cipher: %w: an %v key is not an AES key", offload.ErrInvalid, key.Type())
	}
	eng := key.Engine()
	if eng == nil {
		return nil, 0, fmt.Errorf("cipher: %w: key without an engine", offload.ErrInvalid)
	}
	info := eng.Info()
	if !info.Supports(alg) {
		return nil, 0, fmt.Errorf("cipher: %w: engine %q does not do %v", offload.ErrUnsupported, info.Name, alg)
	}
	return eng, info.MaxInline, nil
}

// wholeBlocks returns the cap rounded down to whole AES blocks, or an error
// when not even one block fits.
func wholeBlocks(eng offload.Engine, max int) (int, error) {
	n := max / aes.BlockSize * aes.BlockSize
	if n == 0 {
		return 0, fmt.Errorf("cipher: %w: engine %q carries %d bytes per request, less than one block", offload.ErrUnsupported, eng.Info().Name, max)
	}
	return n, nil
}

// sliceForAppend extends in by n bytes, reusing its capacity when it can,
// and returns the whole slice and the n new bytes.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}

// inexactOverlap reports whether x and y share memory without starting at
// the same place: the overlap crypto/cipher refuses, since a mode that
// writes its output while it still reads its input would corrupt it.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	x0, x1 := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&x[len(x)-1]))
	y0, y1 := uintptr(unsafe.Pointer(&y[0])), uintptr(unsafe.Pointer(&y[len(y)-1]))
	return x0 <= y1 && y0 <= x1
}

// outBuffer returns out when the engine may write a blocking request's
// result straight into it (offload.CipherRequest.Out): when it does not
// overlap the input except in place, nor the nonce or additional data.
// Otherwise it returns nil and the result is copied.
func outBuffer(out, input, nonce, aad []byte) []byte {
	if len(out) == 0 || inexactOverlap(out, input) || overlaps(out, nonce) || overlaps(out, aad) {
		return nil
	}
	return out
}

// overlaps reports whether x and y share any memory.
func overlaps(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 && (sameStart(x, y) || inexactOverlap(x, y))
}

// sameStart reports whether x and y are non-empty and begin at the same byte.
func sameStart(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 && &x[0] == &y[0]
}

// wait runs a blocking request: on the caller's goroutine where the engine
// can (the request sets offload.Call.Inline).
func wait(ctx context.Context, eng offload.Engine, req *offload.CipherRequest) ([]byte, error) {
	req.Inline = true
	return eng.Cipher(ctx, req).Wait(ctx)
}
