package tlsconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// finder is an offload.CertificateFinder over one chain and key.
type finder struct {
	name  string
	chain [][]byte
	key   *offload.Key
}

func (f *finder) FindCertificate(ctx context.Context, name string) ([][]byte, *offload.Key, error) {
	if name != f.name {
		return nil, nil, offload.ErrNotFound
	}
	return f.chain, f.key, nil
}

// TestLoad: a certificate made from a store's chain and key serves a
// handshake; every way it can go wrong is an error that says so.
func TestLoad(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	key := must(eng.ImportKey(must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))))
	other := must(eng.ImportKey(must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))))
	leaf := p.leaf(t, key.Public(), "localhost")
	good := &finder{name: "web", chain: [][]byte{leaf}, key: key}
	ctx := context.Background()

	cert, err := tlsconfig.Load(ctx, good, "web", signer.New)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil || len(cert.SupportedSignatureAlgorithms) == 0 {
		t.Fatalf("leaf %v, schemes %v", cert.Leaf, cert.SupportedSignatureAlgorithms)
	}
	addr, _ := serve(t, tlsconfig.Server(cert))
	before := eng.Stats().Op(offload.OpSign).Completed
	if _, err := dial(ctx, addr, &tls.Config{RootCAs: p.pool, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if eng.Stats().Op(offload.OpSign).Completed == before {
		t.Fatal("the handshake did not sign with the stored key")
	}

	refuse := func(*offload.Key) (*signer.Signer, error) { return nil, offload.ErrUnsupported }
	for _, tt := range []struct {
		name  string
		store offload.CertificateFinder
		key   string
		new   func(*offload.Key) (*signer.Signer, error)
		want  error
	}{
		{"nil store", nil, "web", signer.New, offload.ErrInvalid},
		{"nil constructor", good, "web", nil, offload.ErrInvalid},
		{"no such name", good, "mail", signer.New, offload.ErrNotFound},
		{"constructor refuses", good, "web", refuse, offload.ErrUnsupported},
		{"leaf of another key", &finder{name: "web", chain: [][]byte{leaf}, key: other}, "web", signer.New, offload.ErrInvalid},
		{"no chain", &finder{name: "web", key: key}, "web", signer.New, offload.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tlsconfig.Load(ctx, tt.store, tt.key, tt.new); !errors.Is(err, tt.want) {
				t.Fatalf("err %v; want %v", err, tt.want)
			}
		})
	}
}
