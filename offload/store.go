package offload

import "context"

// A KeyStore is implemented by engines whose keys are objects stored on the
// device under names that outlive the process: an RFC 7512 URI on a
// PKCS #11 token, a persistent handle on a TPM. Names are the engine's own;
// every name a KeyStore hands out (Key.Name, ListKeys) is one its FindKey
// accepts again.
type KeyStore interface {
	// FindKey returns the one key that name names. No match is an error
	// wrapping ErrNotFound, several an error wrapping ErrInvalid.
	FindKey(ctx context.Context, name string) (*Key, error)
	// ListKeys returns the names of the stored keys that filter selects
	// (written as a name, with only the attributes to filter on), without
	// loading the keys themselves.
	ListKeys(ctx context.Context, filter string) ([]string, error)
	// DeleteKey destroys the one key that name names, with its public
	// half where the device stores one apart. A name that matches no key
	// fails with ErrNotFound and one that matches several with ErrInvalid;
	// either way nothing is deleted. Operations on a deleted key fail with
	// ErrNotFound.
	DeleteKey(ctx context.Context, name string) error
}

// A CertificateFinder is implemented by engines that keep certificates beside
// their keys. FindCertificate returns the certificate chain that name names,
// DER with the leaf first, and the key whose public half the leaf certifies:
// everything a TLS server needs. A name that matches nothing fails with
// ErrNotFound; a leaf whose key is missing too.
type CertificateFinder interface {
	FindCertificate(ctx context.Context, name string) (chain [][]byte, key *Key, err error)
}

// Name returns the name under which the key's engine stores the key, one
// that the engine's FindKey (KeyStore) accepts again, or "" for a key that
// lives only in process memory or that the engine cannot name. An engine
// names its keys by giving them a handle with a Name() string method.
func (k *Key) Name() string {
	if n, ok := k.handle.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}
