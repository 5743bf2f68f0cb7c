package tlsconfig_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

func TestCertificateSchemes(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	all := []offload.Algorithm{offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521,
		offload.RSAPKCS1v15, offload.RSAPSS, offload.Ed25519}
	tests := []struct {
		kind keyKind
		algs []offload.Algorithm // nil: the soft engine itself
		want []tls.SignatureScheme
	}{
		{kP256, nil, []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512}},
		{kP384, nil, []tls.SignatureScheme{tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP521AndSHA512}},
		{kRSA, nil, []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512,
			tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{kEd25519, nil, []tls.SignatureScheme{tls.Ed25519}},
		{kRSA, []offload.Algorithm{offload.RSAPKCS1v15}, []tls.SignatureScheme{tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{kRSA, []offload.Algorithm{offload.RSAPSS}, []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512}},
		{kP256, all, []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512}},
		{kP384, []offload.Algorithm{offload.ECDSAP384}, []tls.SignatureScheme{tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP521AndSHA512}},
	}
	for _, tt := range tests {
		name := string(tt.kind)
		var imp offload.Importer = eng
		if tt.algs != nil {
			name += "/limited"
			imp = &limited{Engine: eng, algs: tt.algs}
		}
		t.Run(name, func(t *testing.T) {
			priv := stdKey(tt.kind)
			s := offloaded(t, imp, priv, false)
			chain := [][]byte{p.leaf(t, priv.Public(), "localhost")}
			cert, err := tlsconfig.Certificate(chain, s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cert.SupportedSignatureAlgorithms, tt.want) {
				t.Errorf("schemes %v, want %v", cert.SupportedSignatureAlgorithms, tt.want)
			}
			if cert.Leaf == nil || !slices.Equal(cert.Leaf.Raw, chain[0]) {
				t.Error("Leaf not set to the parsed leaf")
			}
			if cert.PrivateKey != crypto.PrivateKey(s) {
				t.Errorf("PrivateKey is %T, want the signer", cert.PrivateKey)
			}
		})
	}
}

func TestCertificateBadInput(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	ec := offloaded(t, eng, stdKey(kP256), false)
	other := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	noEC := &limited{Engine: eng, algs: []offload.Algorithm{offload.RSAPSS, offload.RSAPKCS1v15, offload.ECDSAP384}}
	noRSA := &limited{Engine: eng, algs: []offload.Algorithm{offload.ECDSAP256, offload.RSAOAEP}}
	good := p.leaf(t, ec.Public(), "localhost")

	tests := []struct {
		name  string
		chain [][]byte
		key   crypto.Signer
		want  error
	}{
		{"empty chain", nil, ec, offload.ErrInvalid},
		{"empty leaf", [][]byte{{}}, ec, offload.ErrInvalid},
		{"garbage leaf", [][]byte{[]byte("not a certificate")}, ec, offload.ErrInvalid},
		{"leaf of another key", [][]byte{p.leaf(t, other.Public(), "localhost")}, ec, offload.ErrInvalid},
		{"leaf of another key type", [][]byte{p.leaf(t, stdKey(kEd25519).Public(), "localhost")}, ec, offload.ErrInvalid},
		{"plain private key", [][]byte{good}, stdKey(kP256), offload.ErrInvalid},
		{"nil signer", [][]byte{good}, (*signer.Signer)(nil), offload.ErrInvalid},
		{"zero signer", [][]byte{good}, &signer.Signer{}, offload.ErrInvalid},
		{"engine without the curve", [][]byte{good}, offloaded(t, noEC, stdKey(kP256), false), offload.ErrUnsupported},
		{"engine without RSA signatures", [][]byte{p.leaf(t, stdKey(kRSA).Public(), "localhost")}, offloaded(t, noRSA, stdKey(kRSA), false), offload.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := tlsconfig.Certificate(tt.chain, tt.key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "tlsconfig: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if cert.PrivateKey != nil || cert.Certificate != nil {
				t.Error("a failed Certificate returned a certificate")
			}
		})
	}
}

func TestSchemesUnsupported(t *testing.T) {
	eng := newEngine(t, soft0)
	_, edPriv := must2(ed448.GenerateKey(rand.Reader))
	tests := []struct {
		name string
		key  *offload.Key
		want error
	}{
		{"nil", nil, offload.ErrInvalid},
		{"Ed448", must(eng.ImportKey(edPriv)), offload.ErrUnsupported},
		{"AES", must(eng.GenerateKey(context.Background(), offload.KeyAES, 256)), offload.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsconfig.Schemes(tt.key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSchemesModulusSize checks that an RSA key is offered only the
// schemes its modulus can carry: PSS with a salt as long as the hash
// needs 2·hLen+2 bytes of encoding, PKCS #1 v1.5 its DigestInfo and 11
// bytes. The keys are public halves of the given sizes (nothing signs).
func TestSchemesModulusSize(t *testing.T) {
	eng := newEngine(t, soft0)
	key := func(bits int) *offload.Key {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return offload.NewKey(eng, offload.KeyRSA, bits, &rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: 65537}, nil)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name string
		key  *offload.Key
		want []tls.SignatureScheme
	}{
		{"2048", key(2048), []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{"1024: no PSS with SHA-512", key(1024), []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{"1033: PSS with SHA-512 still does not fit", key(1033), []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{"1034: PSS with SHA-512 fits", key(1034), []tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PSSWithSHA512, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{"752: PKCS #1 v1.5 with SHA-512 just fits", key(752), []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}},
		{"744: PKCS #1 v1.5 with SHA-512 does not", key(744), []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256, tls.PKCS1WithSHA384}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tlsconfig.Schemes(tt.key)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Schemes = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	mismatched := []*offload.Key{
		offload.NewKey(eng, offload.KeyECDSAP384, 384, &p256.PublicKey, nil), // a P-256 key typed P-384
		offload.NewKey(eng, offload.KeyRSA, 2048, &p256.PublicKey, nil),
		offload.NewKey(eng, offload.KeyEd25519, 256, ed25519.PublicKey(make([]byte, 31)), nil),
	}
	for _, k := range mismatched {
		if got, err := tlsconfig.Schemes(k); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("an %v key with a %T public key: Schemes = %v, %v; want ErrInvalid", k.Type(), k.Public(), got, err)
		}
	}
}
