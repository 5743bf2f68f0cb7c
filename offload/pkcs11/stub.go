//go:build !cgo

package pkcs11

import (
	"context"
	"crypto"
	"fmt"

	"github.com/offcrypt/offcrypt/offload"
)

// errNoCgo is what every entry point returns in a build without cgo.
var errNoCgo = fmt.Errorf("pkcs11: built without cgo: %w", offload.ErrUnsupported)

// Engine is the PKCS #11 engine. This build has no cgo, so none can be
// opened.
type Engine struct{}

var (
	_ offload.Engine            = (*Engine)(nil)
	_ offload.HashSessioner     = (*Engine)(nil)
	_ offload.Importer          = (*Engine)(nil)
	_ offload.Generator         = (*Engine)(nil)
	_ offload.KeyStore          = (*Engine)(nil)
	_ offload.CertificateFinder = (*Engine)(nil)
)

// Open fails: the engine needs cgo.
func Open(ctx context.Context, c Config) (*Engine, error) { return nil, errNoCgo }

// Info returns the engine's name.
func (*Engine) Info() offload.Info { return offload.Info{Name: "pkcs11"} }

// FindKey fails: the engine needs cgo.
func (*Engine) FindKey(ctx context.Context, uri string) (*offload.Key, error) { return nil, errNoCgo }

// FindKeyURI fails: the engine needs cgo.
func (*Engine) FindKeyURI(ctx context.Context, u *URI) (*offload.Key, error) { return nil, errNoCgo }

// GenerateKey fails: the engine needs cgo.
func (*Engine) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	return nil, errNoCgo
}

// Generate fails: the engine needs cgo.
func (*Engine) Generate(ctx context.Context, o KeyOptions) (*offload.Key, error) {
	return nil, errNoCgo
}

// KeyURI fails: the engine needs cgo.
func (*Engine) KeyURI(k *offload.Key) (*URI, error) { return nil, errNoCgo }

// List fails: the engine needs cgo.
func (*Engine) List(ctx context.Context, filter string) ([]*URI, error) { return nil, errNoCgo }

// ListKeys fails: the engine needs cgo.
func (*Engine) ListKeys(ctx context.Context, filter string) ([]string, error) { return nil, errNoCgo }

// Delete fails: the engine needs cgo.
func (*Engine) Delete(ctx context.Context, uri string, o DeleteOptions) error { return errNoCgo }

// DeleteKey fails: the engine needs cgo.
func (*Engine) DeleteKey(ctx context.Context, name string) error { return errNoCgo }

// FindCertificate fails: the engine needs cgo.
func (*Engine) FindCertificate(ctx context.Context, uri string) ([][]byte, *offload.Key, error) {
	return nil, nil, errNoCgo
}

// ImportCertificate fails: the engine needs cgo.
func (*Engine) ImportCertificate(ctx context.Context, key *offload.Key, chain [][]byte) error {
	return errNoCgo
}

// ImportKey fails: the engine needs cgo.
func (*Engine) ImportKey(priv any) (*offload.Key, error) { return nil, errNoCgo }

// Sign fails: the engine needs cgo.
func (*Engine) Sign(context.Context, *offload.SignRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](errNoCgo)
}

// Decrypt fails: the engine needs cgo.
func (*Engine) Decrypt(context.Context, *offload.DecryptRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](errNoCgo)
}

// Hash fails: the engine needs cgo.
func (*Engine) Hash(context.Context, *offload.HashRequest) *offload.Future[offload.HashResult] {
	return offload.Failed[offload.HashResult](errNoCgo)
}

// Cipher fails: the engine needs cgo.
func (*Engine) Cipher(context.Context, *offload.CipherRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](errNoCgo)
}

// Random fails: the engine needs cgo.
func (*Engine) Random(context.Context, *offload.RandomRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](errNoCgo)
}

// Stats returns empty counters.
func (*Engine) Stats() offload.Snapshot { return offload.Snapshot{} }

// Close does nothing.
func (*Engine) Close() error { return nil }

// Recovery returns zero counters: the engine needs cgo.
func (*Engine) Recovery() RecoveryStats { return RecoveryStats{} }

// Digest fails: the engine needs cgo.
func (*Engine) Digest(context.Context, crypto.Hash, []byte) *offload.Future[[]byte] {
	return offload.Failed[[]byte](errNoCgo)
}

// HashSession fails: the engine needs cgo.
func (*Engine) HashSession(context.Context, crypto.Hash) (offload.HashSession, error) {
	return nil, errNoCgo
}
