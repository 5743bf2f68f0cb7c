//go:build cgo

package pkcs11

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

// ckError is a CKR_* code returned by a module function. Its Unwrap gives the
// miekg/pkcs11 error, so errors.As finds the raw code, and its Is maps the
// code onto offload's sentinels, so callers never compare codes.
type ckError struct {
	fn      string       // the function that failed, "C_Sign"
	code    pkcs11.Error // the CKR_* value
	decrypt bool         // the failure came from a decryption
}

// Error returns "pkcs11: C_Fn: CKR_NAME (0xCODE)".
func (e *ckError) Error() string {
	// The module's own text is "pkcs11: 0xCODE: CKR_NAME"; its name is
	// what a person looks up.
	name := e.code.Error()
	if i := strings.LastIndex(name, ": "); i >= 0 {
		name = name[i+2:]
	}
	return fmt.Sprintf("pkcs11: %s: %s (0x%X)", e.fn, name, uint(e.code))
}

// Unwrap returns the module's own error.
func (e *ckError) Unwrap() error { return e.code }

// Is maps the CKR code onto offload's sentinels (and, for a failed
// decryption, onto rsa.ErrDecryption).
func (e *ckError) Is(target error) bool {
	switch e.code {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_INVALID,
		pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
		return target == offload.ErrAuth
	case pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_SLOT_ID_INVALID:
		return target == offload.ErrNotFound
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT:
		return target == offload.ErrUnavailable
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_FUNCTION_NOT_SUPPORTED,
		pkcs11.CKR_MECHANISM_PARAM_INVALID:
		return target == offload.ErrUnsupported || target == errors.ErrUnsupported
	case pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_DATA_INVALID, pkcs11.CKR_ARGUMENTS_BAD,
		pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED,
		pkcs11.CKR_KEY_SIZE_RANGE, pkcs11.CKR_TEMPLATE_INCONSISTENT, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID:
		return target == offload.ErrInvalid
	case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:
		if e.decrypt {
			return target == rsa.ErrDecryption || target == offload.ErrInvalid
		}
		return target == offload.ErrInvalid
	case pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_SESSION_CLOSED:
		return target == offload.ErrClosed
	}
	return false
}

// ckErr turns an error from a miekg/pkcs11 call into this package's error.
func ckErr(fn string, err error) error {
	if err == nil {
		return nil
	}
	var code pkcs11.Error
	if errors.As(err, &code) {
		return &ckError{fn: fn, code: code}
	}
	return fmt.Errorf("pkcs11: %s: %w", fn, err)
}

// ckDecryptErr is ckErr for C_Decrypt*: a bad ciphertext also matches
// rsa.ErrDecryption.
func ckDecryptErr(fn string, err error) error {
	err = ckErr(fn, err)
	var ce *ckError
	if errors.As(err, &ce) {
		ce.decrypt = true
	}
	return err
}

// ckCode returns the CKR code in err, or false.
func ckCode(err error) (pkcs11.Error, bool) {
	var code pkcs11.Error
	if errors.As(err, &code) {
		return code, true
	}
	return 0, false
}
