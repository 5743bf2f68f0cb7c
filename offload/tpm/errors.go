package tpm

import (
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/offcrypt/offcrypt/offload"
)

// errWrongKey reports a key whose type or attributes do not allow the
// operation asked of it.
var errWrongKey = fmt.Errorf("tpm: key does not allow this operation: %w", offload.ErrInvalid)

// rcError is a TPM_RC answer to one command. Unwrap gives go-tpm's error
// (errors.Is(err, tpm2.TPMRCRetry) and errors.As(err, &tpm2.TPMFmt1Error{})
// work through it), and Is maps the code onto offload's sentinels.
type rcError struct {
	cmd     string // "Sign"
	err     error  // a tpm2.TPMRC, or another error from go-tpm
	decrypt bool   // the command was RSA_Decrypt
}

func (e *rcError) Error() string { return "tpm: " + e.cmd + ": " + e.err.Error() }

// Unwrap returns go-tpm's error.
func (e *rcError) Unwrap() error { return e.err }

// Is maps the TPM's code onto offload's sentinels.
func (e *rcError) Is(target error) bool {
	is := func(rcs ...tpm2.TPMRC) bool {
		for _, rc := range rcs {
			if errors.Is(e.err, rc) {
				return true
			}
		}
		return false
	}
	switch target {
	case offload.ErrAuth:
		return is(tpm2.TPMRCAuthFail, tpm2.TPMRCBadAuth, tpm2.TPMRCAuthMissing, tpm2.TPMRCLockout)
	case offload.ErrNotFound:
		return is(tpm2.TPMRCHandle, tpm2.TPMRCReferenceH0)
	case offload.ErrInvalid:
		return is(tpm2.TPMRCValue, tpm2.TPMRCSize, tpm2.TPMRCKey, tpm2.TPMRCScheme, tpm2.TPMRCKeySize,
			tpm2.TPMRCAttributes, tpm2.TPMRCType, tpm2.TPMRCHash, tpm2.TPMRCIntegrity, tpm2.TPMRCSymmetric)
	case rsa.ErrDecryption:
		// swtpm (libtpms) answers TPM_RC_FAILURE, not TPM_RC_VALUE, to a
		// ciphertext whose padding does not check, and stays healthy.
		return e.decrypt && is(tpm2.TPMRCValue, tpm2.TPMRCFailure)
	}
	return false
}

// wrapRC wraps the error of a go-tpm command; nil stays nil and a transport
// error passes through unchanged.
func wrapRC(cmd string, err error) error {
	if err == nil || errors.Is(err, ErrTransport) || errors.Is(err, errRetriesExhausted) {
		return err
	}
	var rc *rcError
	if errors.As(err, &rc) {
		return err
	}
	return &rcError{cmd: cmd, err: err}
}
