// Package offload is the asynchronous layer under every offcrypt adapter:
// the contract between the standard-library adapters (signer, hasher,
// cipher, rng, tlsconfig) and the engines that do the work (soft, pkcs11).
//
// # Requests and futures
//
// An Engine has one method per kind of operation (Sign, Decrypt, Hash,
// Cipher, Random). Each takes a context and a request struct with named
// fields and returns a *Future as soon as the request is admitted; the
// device's answer resolves the future later. A caller then waits (Wait),
// selects on Done, asks without blocking (Poll answers ErrNotReady while the
// operation is pending, like wolfHSM's Response), or hands the future to a
// Queue. A future resolves exactly once.
//
// The request's context bounds the operation: when it ends, a request still
// queued never reaches the device, and one the device is working on resolves
// at once with the context's error while its late result is dropped. Work
// done on the caller's goroutine (Call.Inline) is not interrupted, but it
// too fails with the context's error, at the work's end, when the context
// ended meanwhile: no engine delivers a result after its request's context
// ended. The context given to Wait bounds only that wait.
//
// # Many operations from one goroutine
//
// A Queue collects finished operations in batches (Collect, Poll), so one
// goroutine can keep a slow device busy with hundreds of requests without a
// goroutine per request, as wolfSSL_CTX_AsyncPoll or epoll do. Result reads
// a collected operation's value at its type, and a queue may hold futures
// of several result types.
//
// # Limits and backpressure
//
// Every engine admits a bounded number of operations (Info.MaxInFlight) and
// a bounded payload per request (Info.MaxInline). GCM is bounded apart
// (Info.GCMLimit), since a GCM message cannot be split into requests: soft
// and pkcs11 take any length crypto/cipher takes. Admission waits, honouring
// the context, while the engine is full; a request that sets Call.NoWait
// fails at once with ErrBusy instead. Blocking adapters set Call.Inline, which
// lets an engine do the work on the caller's goroutine when a slot (and, for
// a device, a session) is free, saving the hand-off to a parked worker.
//
// # Errors
//
// Failures match sentinels with errors.Is: ErrNotReady, ErrBusy, ErrClosed,
// ErrNotFound, ErrAuth, ErrInvalid, ErrUnsupported (which also matches
// errors.ErrUnsupported, and is reported before anything reaches a device)
// and ErrForeignKey. An operation's error is an *OpError naming the engine
// and the kind of operation; the device's own error (a CKR_* code, say)
// stays in the chain for errors.As.
//
// Some failures read as the standard library's, on every engine: an RSA
// ciphertext that does not decrypt wraps rsa.ErrDecryption (see
// DecryptRequest), and a GCM message that does not authenticate, a
// ciphertext shorter than the tag included, wraps crypto/cipher's own Open
// error (see CipherRequest.Input). An engine's options are checked when it
// is made: zero means the default, and a negative value fails with an error
// wrapping ErrInvalid that names the option and its value, as does a count
// too large to make (above 1<<20 in-flight slots or workers). A panic in an
// engine's work fails that request with a one-line error.
//
// Bad input is an error, never a panic, on every engine and adapter: a nil
// request, a nil context (CheckContext: a failed future, or an error, that
// wraps ErrInvalid, whatever the state of the engine or the future; pass
// context.TODO when unsure), and a private key of the standard library's
// that is malformed (CheckPrivateKey: D nil or out of range, missing
// primes).
//
// # For engine authors
//
// NewKey wraps an engine's handle on a key; NewPromise, Promise.Resolve (or
// Claim and Complete), Resolved and Failed make futures; Limiter is a
// first-come-first-served admission gate; Stats keeps per-operation counters
// and latency quantiles without any dependency; the Check methods on the
// request types validate requests the same way for every engine, and those
// of SignRequest and DecryptRequest hand back what the options ask for,
// resolved (SignParams, DecryptParams: the algorithm, the hash, the PSS
// salt length for the key's modulus, the context string, OAEP's hashes and
// label, the session-key length), so that no engine reads the options
// itself. PSSSaltLength is crypto/rsa's salt rule, KeyTypeOf types a
// standard library public key, and CheckPrivateKey refuses a malformed
// private key before an engine reads it. The package offload/conformance holds the
// suite every engine must pass.
package offload
