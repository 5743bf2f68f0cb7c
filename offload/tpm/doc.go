// Package tpm is offcrypt's TPM 2.0 engine (on github.com/google/go-tpm's
// tpm2 API): an offload.Engine whose requests wait in one queue in front of
// the TPM's one command stream.
//
//	eng, err := tpm.Open(ctx, tpm.Config{Address: "127.0.0.1:2321"}) // swtpm
//	key, err := eng.CreateKey(ctx, tpm.KeySpec{Type: offload.KeyECDSAP256})
//	pemFile, err := eng.KeyFile(key) // load it again later with LoadKeyFile
//	s, err := signer.New(key)
//
// Keys are created in the TPM, imported (TPM2_Import, wrapped to the
// storage root key), loaded from TPM 2.0 key files or found at persistent
// handles. Sign, Decrypt, HashSession and Random run on the engine's
// workers, which take the Device (the binding underneath, usable alone
// through OpenDevice) one at a time. A lost connection is re-dialled, the
// storage root key and session re-created and keys re-loaded; a request
// that failed with it runs once more.
//
// # Transports
//
// A character device (/dev/tpmrm0, the kernel's resource manager, or
// /dev/tpm0), swtpm's TCP data port carrying raw TPM bytes, any other byte
// stream through Config.Dial, or go-tpm's in-process simulator when cgo is
// on. Every response is framed by its header: the 10 header bytes are read,
// then exactly the size they announce, however many reads that takes.
// Commands the TPM answers with TPM_RC_RETRY, TPM_RC_YIELDED or
// TPM_RC_TESTING are sent again, a bounded number of times
// (Config.Retries). A connection that fails mid-command is dropped and
// re-dialled by the next call; the storage root key and the session are
// re-created and keys are re-loaded from their blobs.
//
// # One command stream
//
// A TPM runs one command at a time, and a Device is one command stream. It
// is not safe for concurrent use: one call at a time. The Engine's workers
// take it in turn under one lock, each for one operation (a hash session's
// worker only for each of its steps), and a lost connection is re-dialled
// at the start of the next operation, never in the middle of one.
//
// # Storage root key, session and slots
//
// Keys live under a storage root key made from the TCG's standard ECC P-256
// template (the parent tpm2-tools and tpm2-openssl use), or found at a
// persistent handle. Commands that carry secrets run in one salted HMAC
// session with AES-128-CFB parameter encryption, salted to that key and
// reused across commands: digests going into TPM2_Sign, ciphertexts and
// plaintexts of TPM2_RSA_Decrypt and the bytes of TPM2_GetRandom never
// cross the bus in clear, and each key's auth value never crosses it at all.
// TPM2_Sign's answer cannot be encrypted (it does not start with a TPM2B),
// so signatures do cross in clear; the session's HMAC still proves they
// came from the TPM unchanged.
//
// # RSA-PSS salt
//
// TPMs differ in the PSS salt TPM2_Sign produces. swtpm (libtpms 0.9)
// salts with the hash length, what TLS 1.3 requires; chips that use the
// largest salt the modulus allows exist. RSA keys made here may both sign
// and decrypt with the null scheme, so RSARaw (TPM2_RSA_Decrypt as the raw
// private-key operation) with padding encoded in Go serves every salt
// length on any TPM. For the same reason, OAEP labels that do not end in a
// zero byte (the TPM hashes the label with a terminating zero) go through
// RSARaw too.
//
// A TPM has few object slots (three on swtpm). Keys, hash sequences and a
// created storage root key share them: the Device loads each on demand and,
// when the TPM is full, moves the least recently used one out (a key is
// flushed and later re-loaded; a sequence is context-saved) so any number
// of keys and concurrent hash sequences work. Close flushes everything the
// Device loaded.
package tpm
