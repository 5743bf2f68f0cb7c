//go:build !cgo

package softhsm

// cgo says whether this build can load a PKCS #11 module.
const cgo = false
