package pkcs11

import (
	"fmt"

	"github.com/offcrypt/offcrypt/offload"
)

// MaxIDLen is the longest CKA_ID that Generate accepts: the limit of
// PKCS #15, the file layout most smart cards and many HSMs keep their
// objects in. A token that allows less refuses the generation itself.
const MaxIDLen = 255

// KeyOptions says which key Generate makes and how the token keeps it.
// Every key Generate makes is private, sensitive and never extractable,
// whatever the options.
type KeyOptions struct {
	// Type and Bits are GenerateKey's arguments.
	Type offload.KeyType
	Bits int
	// Label is the key's CKA_LABEL. Empty means "offcrypt-" followed by
	// the first 8 bytes of the ID in hex.
	Label string
	// ID is the key's CKA_ID, 1 to MaxIDLen bytes. Nil means 16 random
	// bytes.
	ID []byte
	// Session makes session objects (CKA_TOKEN false) instead of token
	// objects: the key is gone when the engine closes, and also when the
	// token loses the session that made it, after which operations on it
	// fail with offload.ErrNotFound.
	Session bool
}

// check validates the options that need no token.
func (o *KeyOptions) check() error {
	if o.ID != nil && (len(o.ID) == 0 || len(o.ID) > MaxIDLen) {
		return fmt.Errorf("pkcs11: a CKA_ID of %d bytes: want 1 to %d: %w", len(o.ID), MaxIDLen, offload.ErrInvalid)
	}
	return nil
}

// DeleteOptions says which objects Delete destroys besides the one its
// URI names. Companions are found by the named object's CKA_ID (by its
// CKA_LABEL when it has no ID).
type DeleteOptions struct {
	// PublicKey destroys the public key objects of a private key too.
	PublicKey bool
	// Certificates destroys the certificates stored beside a private key
	// too: a chain ImportCertificate stored, for example.
	Certificates bool
}

// objectClass maps a URI's type to a CKO_ class; ok is false for an
// unknown type or "".
func objectClass(typ string) (class uint, ok bool) {
	switch typ {
	case TypePrivate:
		return ckoPrivateKey, true
	case TypePublic:
		return ckoPublicKey, true
	case TypeCert:
		return ckoCertificate, true
	case TypeSecretKey:
		return ckoSecretKey, true
	case TypeData:
		return ckoData, true
	}
	return 0, false
}

// objectType maps a CKO_ class to a URI's type; "" for a class the URI
// scheme cannot name.
func objectType(class uint) string {
	switch class {
	case ckoPrivateKey:
		return TypePrivate
	case ckoPublicKey:
		return TypePublic
	case ckoCertificate:
		return TypeCert
	case ckoSecretKey:
		return TypeSecretKey
	case ckoData:
		return TypeData
	}
	return ""
}

// Object classes (PKCS #11 CKO_*), here so that the URI mapping builds
// without cgo.
const (
	ckoData        = 0
	ckoCertificate = 1
	ckoPublicKey   = 2
	ckoPrivateKey  = 3
	ckoSecretKey   = 4
)
