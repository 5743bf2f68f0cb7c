// Package qat is the Intel QuickAssist (QAT) engine: the CPA programming
// model driven through the shared executor, with every encoding done in
// Go above a narrow device interface.
//
// # The device
//
// QuickAssist exposes instances, each with bounded request rings (64
// asymmetric and 512 symmetric requests in flight by default). A submission
// returns at once, or answers RETRY when the ring is full; a request
// completes only when someone polls its instance, and its callback runs on
// the polling goroutine. The device does raw primitives only: the RSA
// private-key operation with a CRT key, ECDSA with the caller's nonce and
// truncated digest (which can report that the point multiplication failed),
// AES-GCM on a session per key, direction and AAD length (at most 240
// bytes), and SHA-2 in partial packets, in order, on a session.
//
// Tier 1, the device this package runs on by default and with
// CGO_ENABLED=0, is a Model: a card modelled in pure Go, with real results
// and a service time per request whose rates are parameters (defaults from
// published figures for a DH8950 card, and assumptions derived from them).
// Every figure it gives is modelled, never measured. The cgo binding to
// qatlib (tiers 2 and 3) comes in later changes.
//
// # The engine
//
//	eng, err := qat.Open(ctx, qat.Config{})
//
// Requests go to the instances round-robin; each class (asymmetric,
// symmetric) is admitted up to what its rings hold over all instances, and
// a submission that finds a ring full tries the other instances, then
// backs off and tries again, a bounded number of times (offload.ErrBusy
// after that). One poller goroutine per instance reaps completions: it is
// parked while nothing is outstanding on its instance, polls every
// Config.PollInterval while something is, and at once when the outstanding
// requests reach Config.PollThreshold.
//
// With Config.Batch above 1, AES-GCM requests are gathered per instance and
// submitted several in one device call, as CPA's data plane enqueues
// requests and rings the doorbell once: a batch goes when it is full or
// when its first request has waited Config.BatchWait. Batching trades a
// little latency for fewer device calls; bench/ measures both.
//
// Above the device, in the shared encoders: EMSA-PKCS1-v1_5 and EMSA-PSS
// encoding, constant-time OAEP and PKCS #1 v1.5 unpadding, ECDSA digest
// truncation, hedged RFC 6979 nonces (a new nonce when the multiplication
// fails) and DER. Every RSA result is checked with the public exponent
// before it is returned (ErrFaultCheck otherwise).
//
// The engine signs ECDSA P-256 and P-384, RSA PKCS #1 v1.5 and PSS,
// decrypts RSA OAEP and PKCS #1 v1.5, seals and opens AES-GCM (a message
// whole, in one request of at most Config.MaxInline bytes with its tag: the
// device takes no GCM message in parts, so Info.MaxGCM is left at
// MaxInline), and hashes SHA-224/256/384/512 through HashSession (which
// hasher.NewSession uses; the state cannot leave the device). Ed25519 and random numbers are
// not claimed (qatlib has no random number generator); Info says so. Keys
// are imported or generated in host memory.
//
// A card pays a round trip per request, which small symmetric requests do
// not repay: offload/compose puts the engine beside a software engine, with
// work under a size threshold (and what the card cannot do) kept in
// software, and an opt-in fallback when the card fails.
//
// # Errors
//
// Device statuses are Status values in the error chain: a device that is
// resetting fails requests with StatusRestarting, a failed request with
// StatusFail.
package qat
