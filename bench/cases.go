package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

// A signCase is one operation done two ways: directly with the standard
// library (or circl), and through signer/ over the software engine.
type signCase struct {
	name     string
	direct   func() error
	offcrypt func() error
}

var (
	digest256 = sha256.Sum256([]byte("offcrypt bench message"))
	digest384 = sha512.Sum384([]byte("offcrypt bench message"))
	message   = []byte("offcrypt bench message, signed whole by the schemes that hash it themselves")
)

func signCases() ([]signCase, func(), error) {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { eng.Close() }
	fail := func(err error) ([]signCase, func(), error) { cleanup(); return nil, nil, err }

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	r2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fail(err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, ed448Priv, _ := ed448.GenerateKey(rand.Reader)
	_, mldsaPriv, _ := mldsa65.GenerateKey(rand.Reader)

	signerOf := func(priv any) (*signer.Signer, error) {
		k, err := eng.ImportKey(priv)
		if err != nil {
			return nil, err
		}
		return signer.New(k)
	}
	var errs []error
	must := func(s *signer.Signer, err error) *signer.Signer {
		errs = append(errs, err)
		return s
	}
	sP256 := must(signerOf(p256))
	sP384 := must(signerOf(p384))
	sRSA := must(signerOf(r2048))
	sEd := must(signerOf(edPriv))
	sEd448 := must(signerOf(ed448Priv))
	sMLDSA := must(signerOf(mldsaPriv))
	rsaKey, err := eng.ImportKey(r2048)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	dRSA, err := signer.NewDecrypter(rsaKey)
	if err != nil {
		return fail(err)
	}
	oaep := &rsa.OAEPOptions{Hash: crypto.SHA256}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &r2048.PublicKey, []byte("a 32-byte session key goes here"), nil)
	if err != nil {
		return fail(err)
	}
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}

	ignore := func(_ []byte, err error) error { return err }
	cases := []signCase{
		{"ECDSA P-256 sign",
			func() error { return ignore(ecdsa.SignASN1(rand.Reader, p256, digest256[:])) },
			func() error { return ignore(sP256.Sign(rand.Reader, digest256[:], crypto.SHA256)) }},
		{"ECDSA P-384 sign",
			func() error { return ignore(ecdsa.SignASN1(rand.Reader, p384, digest384[:])) },
			func() error { return ignore(sP384.Sign(rand.Reader, digest384[:], crypto.SHA384)) }},
		{"RSA-2048 PKCS#1 v1.5 sign",
			func() error { return ignore(rsa.SignPKCS1v15(nil, r2048, crypto.SHA256, digest256[:])) },
			func() error { return ignore(sRSA.Sign(rand.Reader, digest256[:], crypto.SHA256)) }},
		{"RSA-2048 PSS sign",
			func() error { return ignore(rsa.SignPSS(rand.Reader, r2048, crypto.SHA256, digest256[:], pss)) },
			func() error { return ignore(sRSA.Sign(rand.Reader, digest256[:], pss)) }},
		{"RSA-2048 OAEP decrypt",
			func() error { return ignore(r2048.Decrypt(nil, ct, oaep)) },
			func() error { return ignore(dRSA.Decrypt(nil, ct, oaep)) }},
		{"Ed25519 sign",
			func() error { ed25519.Sign(edPriv, message); return nil },
			func() error { return ignore(sEd.Sign(nil, message, crypto.Hash(0))) }},
		{"Ed448 sign (circl)",
			func() error { ed448.Sign(ed448Priv, message, ""); return nil },
			func() error { return ignore(sEd448.Sign(nil, message, crypto.Hash(0))) }},
		{"ML-DSA-65 sign, hedged (circl)",
			func() error {
				var sig [mldsa65.SignatureSize]byte
				return mldsa65.SignTo(mldsaPriv, message, nil, true, sig[:])
			},
			func() error { return ignore(sMLDSA.Sign(nil, message, crypto.Hash(0))) }},
	}
	// Every offcrypt case must produce a signature the standard library
	// accepts before it is timed.
	if ok := ecdsa.VerifyASN1(&p256.PublicKey, digest256[:], mustSig(sP256.Sign(nil, digest256[:], crypto.SHA256))); !ok {
		return fail(fmt.Errorf("ECDSA P-256 signature from the engine does not verify"))
	}
	if ok := ed25519.Verify(edPriv.Public().(ed25519.PublicKey), message, mustSig(sEd.Sign(nil, message, crypto.Hash(0)))); !ok {
		return fail(fmt.Errorf("Ed25519 signature from the engine does not verify"))
	}
	return cases, cleanup, nil
}

func mustSig(sig []byte, err error) []byte {
	if err != nil {
		return nil
	}
	return sig
}

// A futureCase measures the cost of the asynchronous layer itself.
type futureCase struct {
	name    string
	measure func() (nsPerOp float64, allocsPerOp int64)
}

func futureCases() []futureCase {
	bench := func(f func(b *testing.B)) (float64, int64) {
		r := testing.Benchmark(f)
		return float64(r.NsPerOp()), r.AllocsPerOp()
	}
	return []futureCase{
		{"future alone: NewPromise, Resolve, Wait (no-op)", func() (float64, int64) {
			ctx := context.Background()
			return bench(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p := offload.NewPromise[[]byte]()
					p.Resolve(nil, nil)
					if _, err := p.Future().Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}},
		{"Ed25519 SignAsync+Wait (worker hand-off) minus direct ed25519.Sign", func() (float64, int64) {
			eng, err := soft.New(soft.Options{})
			if err != nil {
				return -1, -1
			}
			defer eng.Close()
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			k, err := eng.ImportKey(priv)
			if err != nil {
				return -1, -1
			}
			s, err := signer.New(k)
			if err != nil {
				return -1, -1
			}
			ctx := context.Background()
			async, allocs := bench(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.SignAsync(ctx, message, crypto.Hash(0)).Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			direct, directAllocs := bench(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ed25519.Sign(priv, message)
				}
			})
			return async - direct, allocs - directAllocs
		}},
	}
}
