module github.com/offcrypt/offcrypt

go 1.26

require (
	github.com/cloudflare/circl v1.6.5
	github.com/foxboron/go-tpm-keyfiles v0.0.0-20260902202739-8c9c2d1005f4
	github.com/google/go-tpm v0.9.9-0.20260124013517-8f8f42cba0de
	github.com/google/go-tpm-tools v0.4.11
	github.com/miekg/pkcs11 v1.1.2
	golang.org/x/crypto v0.54.0
)

// Used by tests only: internal/leakcheck (and offload/conformance, a test
// suite, through it).
require go.uber.org/goleak v1.3.0

require golang.org/x/sys v0.47.0 // indirect
