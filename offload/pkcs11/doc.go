// Package pkcs11 is an offload.Engine for hardware security modules and
// tokens reached through PKCS #11 (github.com/miekg/pkcs11).
//
//	eng, err := pkcs11.Open(ctx, pkcs11.Config{
//		Module:     "/usr/lib/softhsm/libsofthsm2.so",
//		TokenLabel: "web",
//		PIN:        func(context.Context) ([]byte, error) { return []byte("1234"), nil },
//	})
//	key, err := eng.FindKey(ctx, "pkcs11:token=web;object=tls-key;type=private")
//	s, err := signer.New(key)
//
// # Sessions and threads
//
// The engine opens MaxInFlight sessions on the token and runs one worker
// goroutine per session. A session is held by one goroutine at a time, and
// only a goroutine holding one calls into the module (cgo), so at most
// MaxInFlight goroutines, and the OS threads they occupy, are inside the
// module at once, whatever the number of callers: ten thousand waiting
// callers cost ten thousand parked goroutines, not ten thousand OS threads.
// A request is queued for a worker, except a blocking one (Call.Inline, as
// the signer and cipher adapters send) that finds an in-flight slot and a
// session both free at once: it takes the session and makes its calls on
// the caller's goroutine, which saves the hand-off to a worker (about a
// third of an ECDSA P-256 signature on SoftHSM2 with one caller), and
// gives the session back before it returns. Callers that must wait for a
// slot go to the workers, which keeps the module's calls on a few threads
// while callers queue. Such a call is readied, gated, recovered and
// retried exactly as on a worker; it is not interrupted when its context
// ends, and then fails with the context's error when the token answers (see
// offload.Engine), its result dropped. Admission is first come, first served
// (offload.Limiter); a request whose context ends while it waits for a
// session never reaches the token, and one on a worker whose context ends
// while the token works resolves at once and finishes on its worker, its
// result dropped, so a session is never abandoned in the middle of an
// operation.
//
// # Module initialisation
//
// C_Initialize and C_Finalize act on process-wide state inside the module, so
// the package keeps one reference-counted record per module path: the first
// engine on a module initialises it, the last one to close finalises it.
// Logins are per token and per process too, and are counted the same way.
//
// # Keys
//
// Keys are found by RFC 7512 URI (ParseURI, Engine.FindKey), generated on
// the token with a label and CKA_ID of the caller's (Engine.Generate) or
// random ones (Engine.GenerateKey), or imported (Engine.ImportKey). A
// private key whose public object is missing takes its public half from a
// certificate with the same CKA_ID or label, or from the private object's
// own attributes. Every key's offload.Key.Name is its URI (Engine.KeyURI
// parses it): the token's label and serial number, the key's label, id and
// type, which FindKey, pkcs11-tool and p11tool all understand.
//
// Engine.List and Engine.ListKeys list the objects a URI filter selects,
// reading only their labels and ids; Engine.Delete and Engine.DeleteKey
// destroy exactly the one object a URI names, and on request the public
// key objects and certificates that share its CKA_ID.
// Engine.ImportCertificate stores a certificate chain beside its key and
// Engine.FindCertificate finds it again with the key, which is what
// tlsconfig.Load needs to build a TLS server from one URI. The engine is an
// offload.KeyStore and an offload.CertificateFinder, so callers that hold
// any engine can use these without importing this package.
//
// # Mechanisms
//
// ECDSA signs with CKM_ECDSA over the digest cut to the curve's order as
// crypto/ecdsa cuts it (P-256 with SHA-512 signs the leftmost 32 bytes), RSA
// with CKM_RSA_PKCS (the DigestInfo prefix built here) or CKM_RSA_PKCS_PSS
// (the salt length resolved by offload for the modulus), Ed25519 with
// CKM_EDDSA (pure Ed25519 only). A Message request goes whole to the token
// when it lists the combined hash-and-sign mechanism (CKM_ECDSA_SHA256,
// CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, ...) and is hashed in Go
// otherwise. RSA decryption, OAEP and PKCS #1 v1.5 alike, runs as raw RSA on
// the token (CKM_RSA_X_509) and the padding is removed here, in constant
// time, so every hash and label works exactly as in crypto/rsa and the
// token's answer never tells whether the padding was right; where raw RSA
// is refused it uses CKM_RSA_PKCS_OAEP or CKM_RSA_PKCS. AES runs as
// CKM_AES_GCM, CKM_AES_CBC (no padding) and CKM_AES_CTR (128-bit counter),
// one C_Encrypt or C_Decrypt per request, except a GCM message longer than
// MaxInline, which is streamed in parts of MaxInline bytes on one session
// (C_EncryptUpdate and C_EncryptFinal, or C_DecryptUpdate and
// C_DecryptFinal, whose tag check comes before any plaintext leaves the
// engine), so GCM takes any length crypto/cipher takes. A GCM message that
// does not authenticate fails with an error wrapping crypto/cipher's own,
// which the cipher adapter reports as its ErrOpen. Random bytes come from
// C_GenerateRandom. Info lists only what the token's C_GetMechanismList
// offers.
//
// # Hashing
//
// offload.HashRequest carries a hash's whole running state, as the standard
// library marshals it, so that an engine keeps nothing between requests. A
// token cannot take such a state: its digest state lives inside one session
// (C_DigestInit, C_DigestUpdate, C_DigestFinal) and cannot be exported or
// imported (SoftHSM2 answers C_GetOperationState with
// CKR_FUNCTION_NOT_SUPPORTED). So Hash fails with offload.ErrUnsupported, and the engine is an
// offload.HashSessioner instead: HashSession pins one worker, and its
// PKCS #11 session, to a digest from C_DigestInit to C_DigestFinal, and
// hasher.NewSession streams through it (hasher.New refuses the engine: a
// hash.Hash's Sum must leave the state as it was, and C_DigestFinal ends
// it). Info lists the SHA-2 hashes whose C_Digest
// mechanisms the token has. An open hash session holds a slot and a worker
// until Final or Close. Digest hashes a whole message in one C_Digest.
//
// # Recovery
//
// Sessions, logins and even the module can be lost underneath the engine:
// another user of the module closes every session or logs out, the token
// is pulled, the module is finalised, the p11-kit server in front of a
// remote token restarts (its client module then answers CKR_DEVICE_ERROR
// until the module is initialised again). A worker whose operation fails
// that way reopens its session, logs in again when the token says the
// session is not logged in, re-initialises the module when no session can
// be had (once for all the engines in the process that share the module),
// finds its keys again by class, CKA_ID and CKA_LABEL, and retries the
// operation once. A run of failed recoveries opens a circuit breaker
// (Config.BreakerThreshold, Config.BreakerCooldown) that fails requests at
// once with offload.ErrUnavailable instead of queueing them for a dead token.
// Engine.Recovery counts all of it.
//
// A module is re-initialised only when no call of any engine is inside it:
// every call into a module runs inside that module's gate, which the
// re-initialisation shuts (waiting at most 10 s for the calls inside, and
// failing the recovery rather than finalising the module under a call that
// hangs), and a call made with a session from the module's earlier life is
// refused before it reaches the module and made again on a reopened
// session. p11-kit's modules (its RPC client among them) are called one
// call at a time: their client can leave threads blocked for ever when the
// server dies under concurrent calls.
//
// # Builds without cgo
//
// The engine needs cgo. Without it the package still builds: ParseURI works,
// and Open fails with an error wrapping offload.ErrUnsupported.
package pkcs11
