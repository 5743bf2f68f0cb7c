//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/offcrypt/offcrypt/offload"
)

// TestImportKeyRefusals checks that ImportKey refuses what it cannot or
// must not take, with the right sentinel, before touching the token.
func TestImportKeyRefusals(t *testing.T) {
	e := openEngine(t, 2)
	must := func(v any, err error) any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	rsa1024 := must(rsa.GenerateKey(rand.Reader, 1024))
	_, ed448Priv, _ := ed448.GenerateKey(rand.Reader)
	_, mldsaPriv, _ := mldsa44.GenerateKey(rand.Reader)
	p224 := must(ecdsa.GenerateKey(elliptic.P224(), rand.Reader))
	big5000 := new(big.Int).Lsh(big.NewInt(1), 4999)
	huge := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: big5000, E: 65537}, D: big.NewInt(3), Primes: []*big.Int{big.NewInt(5), big.NewInt(7)}}
	big2048 := new(big.Int).Lsh(big.NewInt(1), 2047)
	threePrimes := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: big2048, E: 65537}, D: big.NewInt(3), Primes: []*big.Int{big.NewInt(5), big.NewInt(7), big.NewInt(11)}}

	tests := []struct {
		name string
		priv any
		want error
	}{
		{"nil", nil, offload.ErrUnsupported},
		{"string", "key", offload.ErrUnsupported},
		{"public key", &p224.(*ecdsa.PrivateKey).PublicKey, offload.ErrUnsupported},
		{"Ed448", ed448Priv, offload.ErrUnsupported},
		{"ML-DSA-44", mldsaPriv, offload.ErrUnsupported},
		{"RSA 1024", rsa1024, offload.ErrUnsupported},
		{"RSA 5000", huge, offload.ErrUnsupported},
		{"RSA three primes", threePrimes, offload.ErrUnsupported},
		{"nil RSA", (*rsa.PrivateKey)(nil), offload.ErrInvalid},
		{"RSA without D", &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: big2048, E: 3}}, offload.ErrInvalid},
		{"P-224", p224, offload.ErrUnsupported},
		{"nil ECDSA", (*ecdsa.PrivateKey)(nil), offload.ErrInvalid},
		{"short Ed25519", ed25519.PrivateKey(make([]byte, 32)), offload.ErrInvalid},
		{"AES 0 bytes", []byte{}, offload.ErrUnsupported},
		{"AES 15 bytes", make([]byte, 15), offload.ErrUnsupported},
		{"AES 64 bytes", make([]byte, 64), offload.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.ImportKey(tt.priv)
			if !errors.Is(err, tt.want) || k != nil {
				t.Fatalf("ImportKey = %v, %v; want nil, %v", k, err, tt.want)
			}
		})
	}
}

// TestImportKey imports keys, uses them, and finds them again by label.
func TestImportKey(t *testing.T) {
	e := openEngine(t, 2)
	ctx := context.Background()
	ecPriv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		priv crypto.Signer
		kt   offload.KeyType
		opts crypto.SignerOpts
	}{
		{"ECDSA P-384", ecPriv, offload.KeyECDSAP384, crypto.SHA256},
		{"Ed25519", edPriv, offload.KeyEd25519, crypto.Hash(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.kt == offload.KeyEd25519 && !e.Info().Supports(offload.Ed25519) {
				t.Skip("token has no CKM_EDDSA")
			}
			k, err := e.ImportKey(tt.priv)
			if err != nil {
				t.Fatalf("ImportKey: %v", err)
			}
			if k.Type() != tt.kt {
				t.Errorf("type %v, want %v", k.Type(), tt.kt)
			}
			msg := []byte("imported")
			in := msg
			if tt.opts.HashFunc() != 0 {
				d := sha256.Sum256(msg)
				in = d[:]
			}
			sig, err := wait(t, e.Sign(ctx, &offload.SignRequest{Key: k, Digest: in, Opts: tt.opts}))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			verify(t, tt.priv.Public(), msg, tt.opts, sig)
			label := k.Handle().(*keyHandle).label
			found, err := e.FindKey(ctx, "pkcs11:object="+label)
			if err != nil {
				t.Fatalf("FindKey(%s): %v", label, err)
			}
			if pk, ok := found.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(tt.priv.Public()) {
				t.Errorf("FindKey found public key %v, want the imported one's", found.Public())
			}
		})
	}
	t.Run("after Close", func(t *testing.T) {
		e2 := openEngine(t, 1)
		e2.Close()
		if _, err := e2.ImportKey(make([]byte, 32)); !errors.Is(err, offload.ErrClosed) {
			t.Errorf("ImportKey after Close: %v", err)
		}
	})
}
