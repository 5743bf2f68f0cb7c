// Package tlsconfig puts keys held by offload engines into crypto/tls: a
// server certificate, a server configuration that picks among several
// certificates, and a client certificate for mutual TLS.
//
// # Certificates
//
// Certificate pairs a chain with a key from package signer (a
// *signer.Signer, or a *signer.Decrypter for RSA). It parses the leaf,
// checks that the leaf's public key is the key's, and limits the
// certificate's SupportedSignatureAlgorithms to the TLS signature schemes
// that the key's engine can really produce, as its offload.Info says: an
// engine without RSA-PSS never offers the PSS schemes (which TLS 1.3 needs
// for RSA keys, with the salt as long as the hash), and a handshake that
// would need one fails with a handshake alert instead of a failed
// signature.
//
// # Contexts
//
// crypto/tls signs through crypto.Signer and crypto.MessageSigner, which
// take no context, so a handshake whose connection is gone would wait for
// the device regardless. The configurations made by Server and the callback
// made by ClientCertificate hand crypto/tls, for every handshake, a copy of
// the certificate whose private key is a small wrapper that signs (and, for
// an RSA *signer.Decrypter, decrypts) with that handshake's context:
// ClientHelloInfo.Context on the server, CertificateRequestInfo.Context on
// the client. On the server the wait for the engine is also given up when
// the client closes its connection while the signature is pending, and
// after Options.SignTimeout. A certificate placed directly in
// tls.Config.Certificates works too, but signs with no context.
//
// The wrapper implements crypto.Decrypter only when the key does, so a
// TLS 1.2 server never sees a decryption method on a non-RSA key (crypto/tls
// refuses such a certificate).
package tlsconfig

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"

	"github.com/offcrypt/offcrypt/internal/rsapad"
	"github.com/offcrypt/offcrypt/offload"
)

// ContextSigner is what Certificate needs of a key: a crypto.Signer and
// crypto.MessageSigner that can also sign with a context and says which
// engine key it signs with. *signer.Signer and *signer.Decrypter are
// ContextSigners.
type ContextSigner interface {
	crypto.MessageSigner
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
	SignMessageContext(ctx context.Context, msg []byte, opts crypto.SignerOpts) ([]byte, error)
	Key() *offload.Key
}

// contextDecrypter is an RSA key that can also decrypt with a context, as
// *signer.Decrypter does.
type contextDecrypter interface {
	ContextSigner
	crypto.Decrypter
	DecryptContext(ctx context.Context, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error)
}

// Certificate returns a tls.Certificate for chain, DER certificates with the
// leaf first, and key, which must be a ContextSigner (*signer.Signer or
// *signer.Decrypter). The result's Leaf is the parsed leaf, its PrivateKey
// is key itself, and its SupportedSignatureAlgorithms are exactly the TLS
// 1.2 and 1.3 schemes the key's engine can produce:
//
//   - ECDSA: the scheme of the key's curve (the only one TLS 1.3 allows),
//     and, for TLS 1.2, which lets any curve sign with any hash, the other
//     two of ECDSA with SHA-256, SHA-384 and SHA-512, when the engine signs
//     on the key's curve;
//   - RSA: PSS with SHA-256, SHA-384 and SHA-512 when the engine has
//     RSA-PSS, and PKCS #1 v1.5 with the same hashes when it has PKCS #1
//     v1.5 signatures, each only if the modulus is large enough;
//   - Ed25519, when the engine has pure Ed25519.
//
// SHA-1 schemes are never offered. Use Server (or ClientCertificate) to
// carry each handshake's context to the engine.
//
// An empty chain, a leaf that does not parse or whose public key is not
// key's, and a key that is not a ContextSigner or has no engine fail with an
// error wrapping offload.ErrInvalid. A key of a type TLS cannot use, or
// whose engine can produce none of its schemes, fails with an error wrapping
// offload.ErrUnsupported.
func Certificate(chain [][]byte, key crypto.Signer) (tls.Certificate, error) {
	if len(chain) == 0 || len(chain[0]) == 0 {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: %w: empty certificate chain", offload.ErrInvalid)
	}
	cs, ok := key.(ContextSigner)
	if !ok || cs == nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: %w: key of type %T is not an offloaded signer", offload.ErrInvalid, key)
	}
	k := cs.Key()
	if k == nil || k.Engine() == nil || k.Public() == nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: %w: signer has no engine key", offload.ErrInvalid)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: %w: leaf certificate: %w", offload.ErrInvalid, err)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(k.Public()) {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: %w: leaf certificate's %T public key does not match the %v key", offload.ErrInvalid, leaf.PublicKey, k.Type())
	}
	schemes, err := Schemes(k)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{
		Certificate:                  slices.Clone(chain),
		PrivateKey:                   key,
		SupportedSignatureAlgorithms: schemes,
		Leaf:                         leaf,
	}, nil
}

// rsaSchemes lists the RSA schemes, PSS first, with their hash. TLS 1.3
// signs PSS with a salt as long as the hash.
var rsaSchemes = []struct {
	scheme tls.SignatureScheme
	alg    offload.Algorithm
	hash   crypto.Hash
}{
	{tls.PSSWithSHA256, offload.RSAPSS, crypto.SHA256},
	{tls.PSSWithSHA384, offload.RSAPSS, crypto.SHA384},
	{tls.PSSWithSHA512, offload.RSAPSS, crypto.SHA512},
	{tls.PKCS1WithSHA256, offload.RSAPKCS1v15, crypto.SHA256},
	{tls.PKCS1WithSHA384, offload.RSAPKCS1v15, crypto.SHA384},
	{tls.PKCS1WithSHA512, offload.RSAPKCS1v15, crypto.SHA512},
}

// fits reports whether a bits-bit modulus can carry a signature of alg
// with hash h, by the rules the engines sign by.
func fits(alg offload.Algorithm, bits int, h crypto.Hash) bool {
	if alg == offload.RSAPSS {
		_, err := offload.PSSSaltLength(bits, h, rsa.PSSSaltLengthEqualsHash)
		return err == nil
	}
	_, err := rsapad.DigestInfo((bits+7)/8, h, make([]byte, h.Size()))
	return err == nil
}

// ecdsaSchemes are the ECDSA schemes indexed by curve: P-256, P-384, P-521.
var ecdsaSchemes = []tls.SignatureScheme{
	tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512,
}

// Schemes returns the TLS signature schemes that key's engine can produce
// with key, as Certificate describes. A key TLS cannot use (Ed448, ML-DSA,
// AES), or one whose engine can produce none of its schemes, fails with an
// error wrapping offload.ErrUnsupported; a nil key, or one without an
// engine, with offload.ErrInvalid.
func Schemes(key *offload.Key) ([]tls.SignatureScheme, error) {
	if key == nil || key.Engine() == nil {
		return nil, fmt.Errorf("tlsconfig: %w: key has no engine", offload.ErrInvalid)
	}
	info := key.Engine().Info()
	var out []tls.SignatureScheme
	t := key.Type()
	switch t {
	case offload.KeyECDSAP256, offload.KeyECDSAP384, offload.KeyECDSAP521, offload.KeyRSA, offload.KeyEd25519:
	default:
		return nil, fmt.Errorf("tlsconfig: %w: TLS cannot use an %v key", offload.ErrUnsupported, t)
	}
	pt, bits, err := offload.KeyTypeOf(key.Public())
	if err != nil || pt != t {
		return nil, fmt.Errorf("tlsconfig: %w: %v key with a %T public key", offload.ErrInvalid, t, key.Public())
	}
	switch t {
	case offload.KeyECDSAP256, offload.KeyECDSAP384, offload.KeyECDSAP521:
		i := int(t - offload.KeyECDSAP256)
		if info.Supports(offload.ECDSAP256 + offload.Algorithm(i)) {
			// The curve's own scheme first, then the others for TLS 1.2.
			out = append(out, ecdsaSchemes[i])
			for j, s := range ecdsaSchemes {
				if j != i {
					out = append(out, s)
				}
			}
		}
	case offload.KeyRSA:
		for _, s := range rsaSchemes {
			if info.Supports(s.alg) && fits(s.alg, bits, s.hash) {
				out = append(out, s.scheme)
			}
		}
	case offload.KeyEd25519:
		if info.Supports(offload.Ed25519) {
			out = append(out, tls.Ed25519)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tlsconfig: %w: engine %q can produce no TLS signature scheme for an %v key", offload.ErrUnsupported, info.Name, key.Type())
	}
	return out, nil
}
