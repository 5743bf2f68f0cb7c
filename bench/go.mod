module github.com/offcrypt/offcrypt/bench

go 1.26

require (
	github.com/cloudflare/circl v1.6.5
	github.com/offcrypt/offcrypt v0.0.0
)

require (
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

replace github.com/offcrypt/offcrypt => ../
