module github.com/offcrypt/offcrypt/bench

go 1.26

require (
	github.com/ThalesGroup/crypto11 v1.5.0
	github.com/cloudflare/circl v1.6.5
	github.com/miekg/pkcs11 v1.1.2
	github.com/offcrypt/offcrypt v0.0.0
)

require (
	github.com/pkg/errors v0.9.1 // indirect
	github.com/thales-e-security/pool v0.0.2 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

replace github.com/offcrypt/offcrypt => ../
