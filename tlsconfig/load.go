package tlsconfig

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/offcrypt/offcrypt/offload"
)

// Load returns a tls.Certificate made entirely of what an engine stores:
// the chain and key that name names in store (an offload.CertificateFinder,
// such as the PKCS #11 engine, whose names are RFC 7512 URIs), the key
// wrapped by newSigner (signer.New; or signer.NewDecrypter for an RSA key
// that must also serve TLS 1.2's RSA key exchange) and the whole checked
// and limited as Certificate does it. The key signs where it is stored.
//
//	cert, err := tlsconfig.Load(ctx, eng, "pkcs11:token=web;object=tls", signer.New)
//	srv.TLS = tlsconfig.Server(cert)
//
// Load does not import the engine: any engine that implements
// offload.CertificateFinder works. A nil store or newSigner fails with an
// error wrapping offload.ErrInvalid; the store's and newSigner's errors
// are returned wrapped, as are Certificate's.
func Load[S ContextSigner](ctx context.Context, store offload.CertificateFinder, name string, newSigner func(*offload.Key) (S, error)) (tls.Certificate, error) {
	if store == nil || newSigner == nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: %w: Load needs a store and a signer constructor", offload.ErrInvalid)
	}
	chain, key, err := store.FindCertificate(ctx, name)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: loading %s: %w", name, err)
	}
	s, err := newSigner(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: the key of %s: %w", name, err)
	}
	return Certificate(chain, s)
}
