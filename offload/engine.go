package offload

import (
	"context"
	"crypto"
	"fmt"
	"slices"
)

// An Engine does cryptographic work somewhere else: on an HSM, a TPM, a
// QuickAssist card or a pool of goroutines. Every operation method returns a
// Future as soon as the request is admitted and never waits for the device.
// Admission waits, honouring ctx, while the engine is at its in-flight limit
// (Info.MaxInFlight), unless the request sets Call.NoWait. An error found
// before the device is involved (bad input, an unsupported algorithm, a
// closed engine, ErrBusy) comes back as an already failed future.
//
// The context given to an operation bounds the operation: if it ends while
// the request waits for admission or sits in the engine's queue, the request
// never reaches the device; if it ends while the device works, the future
// resolves at once with the context's error and the device's late result is
// dropped. Either way the engine's slot is freed once the device is done.
// Work that an in-process engine does on the caller's goroutine
// (Call.Inline) cannot be interrupted: the operation method returns when
// the work ends, and if the context ended meanwhile the result is dropped
// (zeroed when secret) and the future fails with the context's error. Such
// a call sees the context's end no later than the work's end, and a result
// never arrives after its context ended, inline or not.
//
// Engines are safe for concurrent use. Close fails what has not finished
// with ErrClosed, waits for the device to finish what it was doing, stops
// the engine's goroutines and releases the device; every call after Close
// fails with ErrClosed.
type Engine interface {
	Info() Info
	Sign(ctx context.Context, req *SignRequest) *Future[[]byte]
	Decrypt(ctx context.Context, req *DecryptRequest) *Future[[]byte]
	Hash(ctx context.Context, req *HashRequest) *Future[HashResult]
	Cipher(ctx context.Context, req *CipherRequest) *Future[[]byte]
	Random(ctx context.Context, req *RandomRequest) *Future[[]byte]
	Stats() Snapshot
	Close() error
}

// Importer is implemented by engines that can take in a private key held in
// process memory (crypto.Signer values of the standard library or circl, or
// raw AES key bytes).
type Importer interface {
	ImportKey(priv any) (*Key, error)
}

// Generator is implemented by engines that can make new keys.
type Generator interface {
	GenerateKey(ctx context.Context, t KeyType, bits int) (*Key, error)
}

// Info describes an engine: its name, its limits and what it can do.
type Info struct {
	Name        string // short, lowercase: "soft", "pkcs11", "tpm", "qat"
	MaxInFlight int    // operations admitted at once
	MaxInline   int    // the largest payload one request may carry, in bytes
	// MaxGCM is the longest GCM Input one CipherRequest may carry (a
	// ciphertext with its tag, when opening); 0 means MaxInline. An engine
	// that computes in process, or that streams a message to its device in
	// parts, sets it far above MaxInline: a GCM message cannot be split
	// into requests (one tag covers all of it), so this is the longest
	// message the engine can seal or open at all.
	MaxGCM     int
	MinRSABits int         // smallest RSA modulus accepted, 0 when RSA is not supported
	MaxRSABits int         // largest RSA modulus accepted
	Algorithms []Algorithm // what the engine can do, in Algorithm order
}

// Supports reports whether the engine can do a.
func (i Info) Supports(a Algorithm) bool { return slices.Contains(i.Algorithms, a) }

// GCMLimit returns the longest GCM Input one request may carry: MaxGCM, or
// MaxInline when MaxGCM is 0.
func (i Info) GCMLimit() int {
	if i.MaxGCM > 0 {
		return i.MaxGCM
	}
	return i.MaxInline
}

// CheckContext returns an error wrapping ErrInvalid for a nil context, and
// nil otherwise. Every engine and adapter method that takes a context
// refuses a nil one with this error (in a failed future, where the method
// returns one) instead of panicking or standing in context.Background():
// as the context package says, pass context.TODO when unsure.
func CheckContext(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	return nil
}

var errNilContext = fmt.Errorf("%w: nil context (use context.Background or context.TODO)", ErrInvalid)

// Call holds how a request enters an engine. It is embedded in every request.
type Call struct {
	// NoWait makes a request that finds the engine at its in-flight limit
	// fail at once with ErrBusy instead of waiting for a slot.
	NoWait bool

	// Inline says that the caller will wait for the result straight away, so
	// an engine may do the work on the caller's goroutine when a slot is
	// free, saving the hand-off to a worker: the soft engine does, and an
	// engine whose workers own device state does when one of them is free
	// too (pkcs11's sessions), still bounding the goroutines inside the
	// device by its states. The blocking adapters set it; engines that
	// must run on their own threads ignore it.
	Inline bool
}

// A SignRequest asks for a signature.
//
// Exactly one of Digest and Message is set. Digest follows crypto.Signer:
// the hash of the message when Opts.HashFunc() is not zero, the message
// itself when it is (Ed25519, Ed448, ML-DSA). Message follows
// crypto.MessageSigner: always the whole message, which the engine hashes
// with Opts.HashFunc() itself, on the device where the device can.
type SignRequest struct {
	Call
	Key     *Key
	Digest  []byte
	Message []byte
	// Opts are the standard library's signer options: a crypto.Hash,
	// *rsa.PSSOptions, *ed25519.Options, or circl's options for Ed448 and
	// ML-DSA. Nil means crypto.Hash(0).
	Opts crypto.SignerOpts
}

// A DecryptRequest asks for an RSA decryption.
//
// Every engine fails a ciphertext that is longer than the modulus or not
// below it, and one whose padding is wrong, with an error wrapping
// rsa.ErrDecryption, as crypto/rsa does; with
// rsa.PKCS1v15DecryptOptions.SessionKeyLen set, wrong padding instead
// yields that many fresh random bytes and no error.
type DecryptRequest struct {
	Call
	Key        *Key
	Ciphertext []byte
	// Opts are *rsa.OAEPOptions or *rsa.PKCS1v15DecryptOptions; nil means
	// PKCS #1 v1.5, as in rsa.PrivateKey.Decrypt.
	Opts crypto.DecrypterOpts
}

// A HashRequest advances or finishes a hash computation on a stateless
// engine. The whole state travels with every request, as the standard
// library marshals it (encoding.BinaryMarshaler on its hash.Hash), so the
// engine keeps nothing between requests.
type HashRequest struct {
	Call
	Hash crypto.Hash // SHA-224, SHA-256, SHA-384 or SHA-512
	// State is the marshaled state to resume from; nil starts afresh.
	State []byte
	// Data is the input. Unless Final is set it must be whole blocks.
	Data []byte
	// Final asks for the digest instead of the next state.
	Final bool
}

// HashResult is a hash request's answer: the next State, or when the request
// was Final, the Sum.
type HashResult struct {
	State []byte
	Sum   []byte
}

// CipherMode names a block cipher mode.
type CipherMode uint8

// Block cipher modes.
const (
	ModeGCM CipherMode = iota + 1
	ModeCBC
	ModeCTR
)

func (m CipherMode) String() string {
	switch m {
	case ModeGCM:
		return "GCM"
	case ModeCBC:
		return "CBC"
	case ModeCTR:
		return "CTR"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// A CipherRequest asks for one symmetric operation with an engine-held key.
type CipherRequest struct {
	Call
	Key     *Key
	Mode    CipherMode
	Decrypt bool // false encrypts
	// IV is the nonce (GCM), the IV (CBC) or the initial counter block (CTR).
	IV []byte
	// AAD is GCM's additional authenticated data.
	AAD []byte
	// Input is the plaintext or ciphertext. For GCM decryption it ends with
	// the 16-byte tag; CBC input is whole blocks, without padding.
	//
	// A GCM decryption that does not authenticate (a tampered ciphertext,
	// tag or AAD, a wrong key or nonce, or an Input too short to hold the
	// tag) fails on every engine with an error wrapping the very error
	// crypto/cipher's AES-GCM Open returns ("cipher: message authentication
	// failed"), never with ErrInvalid, as crypto/cipher reports it; the
	// device's own error, if any, stays in the chain beside it.
	Input []byte
	// Out, if its capacity holds the result, may receive it: the engine then
	// returns Out[:n] instead of a new slice, saving an allocation and a copy
	// per request. Out must not overlap Input unless both start at the same
	// byte (in-place), nor overlap IV or AAD. An engine writes into Out only
	// while the caller is certain to wait for it (Call.Inline, on the
	// caller's goroutine), never after the future has resolved.
	Out []byte
}

// A RandomRequest asks for N random bytes; N may not exceed Info.MaxInline.
//
// N = 0 asks for nothing, as a Read into an empty buffer does: every engine
// that offers Random answers it at once with an empty, non-nil slice and a nil error, without
// reaching the device, whatever the context (a closed engine still fails it
// with ErrClosed). Check says which requests these are.
type RandomRequest struct {
	Call
	N int
}

// Check validates a random request against the engine's payload cap
// (Info.MaxInline): a nil request and an N below 0 or above maxInline fail
// with an error wrapping ErrInvalid. It reports empty for N = 0, which the
// engine answers with Resolved([]byte{}, nil) instead of submitting it.
func (r *RandomRequest) Check(maxInline int) (empty bool, err error) {
	switch {
	case r == nil:
		return false, fmt.Errorf("%w: nil random request", ErrInvalid)
	case r.N < 0 || r.N > maxInline:
		return false, fmt.Errorf("%w: %d random bytes asked for; 0 to %d allowed", ErrInvalid, r.N, maxInline)
	}
	return r.N == 0, nil
}

// HashSessioner is implemented by engines whose hashing keeps its state on
// the device, such as a PKCS#11 token's digest operation, which lives in
// one session from C_DigestInit to C_DigestFinal. Such an engine cannot
// serve stateless HashRequests that carry the state: its Hash method fails
// with ErrUnsupported even for the hashes Info claims, and it offers
// sessions instead. hasher uses a HashSessioner when the engine is one.
type HashSessioner interface {
	// HashSession starts a hash computation with h on the device. It waits,
	// honouring ctx, for an in-flight slot, which the session holds until it
	// is finished or closed. The hashes it accepts are those Info claims.
	HashSession(ctx context.Context, h crypto.Hash) (HashSession, error)
}

// A HashSession is one hash computation held by a device. Its methods must
// be called one at a time: each Update's future must resolve before the
// next call. After Final resolves, or after any request fails (a device
// ends its operation on an error), the session is over: further calls fail
// and the slot is free.
type HashSession interface {
	// Update feeds data, at most Info.MaxInline bytes, to the computation.
	// As with every request, the engine does not read data after the
	// future has resolved (a context that ends resolves it early), so it
	// copies what it may still need.
	Update(ctx context.Context, data []byte) *Future[struct{}]
	// Final ends the computation and returns the digest.
	Final(ctx context.Context) *Future[[]byte]
	// Close abandons an unfinished computation and frees its slot; it does
	// nothing on a finished one. It does not wait for the device.
	Close() error
}
