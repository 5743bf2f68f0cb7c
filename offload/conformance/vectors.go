package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/offcrypt/offcrypt/internal/wycheproof"
	"github.com/offcrypt/offcrypt/offload"
)

// testdata holds the vectors: Wycheproof files (with their LICENSE) and RFC
// 8032's EdDSA test vectors. They are embedded so the suite runs from any
// package's directory.
//
//go:embed testdata
var testdata embed.FS

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := testdata.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

var hashNames = map[string]crypto.Hash{
	"SHA-1": crypto.SHA1, "SHA-224": crypto.SHA224, "SHA-256": crypto.SHA256,
	"SHA-384": crypto.SHA384, "SHA-512": crypto.SHA512,
}

type sigGenFile struct {
	TestGroups []struct {
		PrivateKeyPkcs8 string            `json:"privateKeyPkcs8"`
		SHA             string            `json:"sha"`
		Tests           []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

type oaepFile struct {
	TestGroups []struct {
		PrivateKeyPkcs8 string            `json:"privateKeyPkcs8"`
		SHA             string            `json:"sha"`
		MGFSha          string            `json:"mgfSha"`
		Tests           []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

type pssFile struct {
	TestGroups []struct {
		KeySize int               `json:"keySize"`
		SHA     string            `json:"sha"`
		MGF     string            `json:"mgf"`
		MGFSha  string            `json:"mgfSha"`
		SLen    int               `json:"sLen"`
		Tests   []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

type mldsaFile struct {
	TestGroups []struct {
		PrivateSeed wycheproof.Hex    `json:"privateSeed"`
		PublicKey   wycheproof.Hex    `json:"publicKey"`
		Tests       []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

type rfc8032File struct {
	Vectors []struct {
		Name   string         `json:"name"`
		Scheme string         `json:"scheme"`
		SK     wycheproof.Hex `json:"sk"`
		PK     wycheproof.Hex `json:"pk"`
		Msg    wycheproof.Hex `json:"msg"`
		Sig    wycheproof.Hex `json:"sig"`
		PH     bool           `json:"ph"`
		Ctx    wycheproof.Hex `json:"ctx"`
	} `json:"vectors"`
}

// vectors runs the published vectors for the algorithms the engine claims.
func (s *suite) vectors(t *testing.T) {
	run := func(name string, a offload.Algorithm, f func(*testing.T)) {
		t.Run(name, func(t *testing.T) {
			if !s.info.Supports(a) {
				t.Skipf("%v is not claimed", a)
			}
			f(t)
		})
	}
	run("rsa_pkcs1_sig_gen", offload.RSAPKCS1v15, s.wycheproofSigGen)
	run("rsa_oaep", offload.RSAOAEP, s.wycheproofOAEP)
	run("rsa_pkcs1_decrypt", offload.RSAPKCS1v15Decrypt, s.wycheproofPKCS1Decrypt)
	run("rsa_pss_misc", offload.RSAPSS, s.wycheproofPSS)
	run("mldsa65_seed", offload.MLDSA65, s.wycheproofMLDSA)
	run("rfc8032_ed25519", offload.Ed25519, s.rfc8032Ed25519)
	run("rfc8032_ed448", offload.Ed448, s.rfc8032Ed448)
	run("aes_gcm", offload.AESGCM, s.wycheproofGCM)
	run("aes_cbc_pkcs5", offload.AESCBC, s.wycheproofCBC)
}

// refused reports an error that says the engine will not do what was asked
// (rather than that it tried and failed).
func refused(err error) bool {
	return errors.Is(err, offload.ErrUnsupported) || errors.Is(err, offload.ErrInvalid)
}

func (s *suite) wycheproofSigGen(t *testing.T) {
	var f sigGenFile
	loadJSON(t, "wycheproof/rsa_pkcs1_2048_sig_gen_test.json", &f)
	for gi, g := range f.TestGroups {
		h := hashNames[g.SHA]
		priv := parseRSA(t, g.PrivateKeyPkcs8)
		var key *offload.Key
		var importErr error
		if s.Import == nil {
			t.Skip("published vectors need Setup.Import")
		}
		key, importErr = s.Import(priv)
		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("group%d/%v/%s", gi, g.SHA, tc.Name()), func(t *testing.T) {
				if importErr != nil {
					// Wycheproof marks the weak keys (small public exponent)
					// acceptable: an engine may refuse them.
					if tc.Result == "acceptable" {
						t.Logf("key refused (%v), allowed for %v", importErr, tc.Flags)
						return
					}
					t.Fatalf("importing the group's key: %v", importErr)
				}
				f := s.Engine.Sign(context.Background(), &offload.SignRequest{Key: key, Digest: hashOf(h, tc.Msg), Opts: h})
				sig, err := waitErr(t, s, f)
				if s.injected(f.Err()) {
					return
				}
				if err != nil {
					if tc.Result == "acceptable" && refused(err) {
						t.Logf("refused (%v), allowed for %v", err, tc.Flags)
						return
					}
					t.Fatalf("sign: %v", err)
				}
				if !bytes.Equal(sig, tc.Sig) {
					t.Errorf("signature differs from the vector's")
				}
			})
		}
	}
}

func (s *suite) wycheproofDecrypt(t *testing.T, file string, opts func(label []byte, sha, mgf string) crypto.DecrypterOpts) {
	var f oaepFile
	loadJSON(t, file, &f)
	if s.Import == nil {
		t.Skip("published vectors need Setup.Import")
	}
	for gi, g := range f.TestGroups {
		key := s.importKey(t, parseRSA(t, g.PrivateKeyPkcs8))
		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("group%d/%s", gi, tc.Name()), func(t *testing.T) {
				got, err, ok := s.decrypt(t, key, tc.CT, opts(tc.Label, g.SHA, g.MGFSha))
				if !ok {
					return
				}
				switch tc.Result {
				case "valid", "acceptable":
					if err != nil || !bytes.Equal(got, tc.Msg) {
						t.Errorf("%s: got %x, %v; want %x", tc.Comment, got, err, []byte(tc.Msg))
					}
				default:
					if err == nil {
						t.Errorf("%s %v: invalid ciphertext decrypted to %x", tc.Comment, tc.Flags, got)
					}
				}
			})
		}
	}
}

func (s *suite) wycheproofOAEP(t *testing.T) {
	s.wycheproofDecrypt(t, "wycheproof/rsa_oaep_2048_sha256_mgf1sha256_test.json", func(label []byte, sha, mgf string) crypto.DecrypterOpts {
		return &rsa.OAEPOptions{Hash: hashNames[sha], MGFHash: hashNames[mgf], Label: label}
	})
}

func (s *suite) wycheproofPKCS1Decrypt(t *testing.T) {
	s.wycheproofDecrypt(t, "wycheproof/rsa_pkcs1_2048_test.json", func([]byte, string, string) crypto.DecrypterOpts {
		return &rsa.PKCS1v15DecryptOptions{}
	})
}

// wycheproofPSS signs with each parameter set of rsa_pss_misc_test.json. Its
// groups carry public keys only, so the suite's own key of the group's size
// signs, and the standard library verifies with the same parameters. Groups
// whose MGF hash differs from the message hash are skipped: the standard
// library ties the two. So are groups with sLen 0, which rsa.PSSOptions
// cannot express (a SaltLength of 0 means "auto").
func (s *suite) wycheproofPSS(t *testing.T) {
	var f pssFile
	loadJSON(t, "wycheproof/rsa_pss_misc_test.json", &f)
	skippedMGF, skippedZero := 0, 0
	for _, g := range f.TestGroups {
		h, ok := hashNames[g.SHA]
		switch {
		case !ok || g.MGF != "MGF1":
			t.Fatalf("unexpected group parameters %s/%s", g.SHA, g.MGF)
		case g.MGFSha != g.SHA:
			skippedMGF++
			continue
		case g.SLen == 0:
			skippedZero++
			continue
		}
		if g.KeySize < s.info.MinRSABits || g.KeySize > s.info.MaxRSABits {
			continue
		}
		t.Run(fmt.Sprintf("%s/sLen%d", g.SHA, g.SLen), func(t *testing.T) {
			kp := s.key(t, offload.KeyRSA, g.KeySize)
			pub := kp.key.Public().(*rsa.PublicKey)
			msg := g.Tests[0].Msg
			digest := hashOf(h, msg)
			f := s.Engine.Sign(context.Background(), &offload.SignRequest{Key: kp.key, Digest: digest, Opts: &rsa.PSSOptions{SaltLength: g.SLen, Hash: h}})
			sig, err := waitErr(t, s, f)
			if s.injected(f.Err()) {
				return
			}
			if err != nil {
				if h == crypto.SHA1 && refused(err) {
					t.Logf("SHA-1 refused: %v", err)
					return
				}
				t.Fatal(err)
			}
			if err := rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: g.SLen}); err != nil {
				t.Errorf("does not verify with sLen %d: %v", g.SLen, err)
			}
		})
	}
	t.Logf("skipped %d groups whose MGF hash differs from the hash and %d with sLen 0", skippedMGF, skippedZero)
}

// wycheproofMLDSA derives each group's key from its seed, and checks every
// deterministic vector's signature byte for byte (with the vector's context
// where it has one). Vectors signed hedged (Randomized) are signed and
// verified; vectors for the internal interface (mu without msg) are left
// out; invalid contexts must be refused.
func (s *suite) wycheproofMLDSA(t *testing.T) {
	var f mldsaFile
	loadJSON(t, "wycheproof/mldsa_65_sign_seed_test.json", &f)
	if s.Import == nil {
		t.Skip("published vectors need Setup.Import")
	}
	for gi, g := range f.TestGroups {
		if len(g.PrivateSeed) != mldsa65.SeedSize {
			for _, tc := range g.Tests {
				if tc.Result == "valid" {
					t.Errorf("group %d: a valid vector with a %d-byte seed", gi, len(g.PrivateSeed))
				}
			}
			continue
		}
		pk, sk := mldsa65.NewKeyFromSeed((*[mldsa65.SeedSize]byte)(g.PrivateSeed))
		if !bytes.Equal(pk.Bytes(), g.PublicKey) {
			t.Fatalf("group %d: the seed does not give the group's public key", gi)
		}
		key := s.importKey(t, sk)
		for _, tc := range g.Tests {
			if tc.Msg == nil || slices.Contains(tc.Flags, "Internal") {
				continue
			}
			t.Run(fmt.Sprintf("group%d/%s", gi, tc.Name()), func(t *testing.T) {
				randomized := len(tc.Rnd) > 0 || slices.Contains(tc.Flags, "Randomized")
				opts := &offload.MLDSAOptions{Context: tc.Ctx, Deterministic: !randomized}
				f := s.Engine.Sign(context.Background(), &offload.SignRequest{Key: key, Message: tc.Msg, Opts: opts})
				sig, err := waitErr(t, s, f)
				if s.injected(f.Err()) {
					return
				}
				if tc.Result != "valid" {
					if err == nil {
						t.Errorf("%s %v: signed", tc.Comment, tc.Flags)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !mldsa65.Verify(pk, tc.Msg, tc.Ctx, sig) {
					t.Fatal("signature does not verify")
				}
				if !randomized && !bytes.Equal(sig, tc.Sig) {
					t.Error("deterministic signature differs from the vector's")
				}
			})
		}
	}
}

// rfc8032Ed25519 checks RFC 8032 section 7.1-7.3 vectors byte for byte, for
// the Ed25519 variants the engine claims.
func (s *suite) rfc8032Ed25519(t *testing.T) {
	var f rfc8032File
	loadJSON(t, "rfc8032/ed25519.json", &f)
	if s.Import == nil {
		t.Skip("published vectors need Setup.Import")
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			priv := ed25519.NewKeyFromSeed(v.SK)
			if !bytes.Equal(priv.Public().(ed25519.PublicKey), v.PK) {
				t.Fatal("vector's seed does not give its public key")
			}
			req := &offload.SignRequest{Message: v.Msg}
			opts := &ed25519.Options{Context: string(v.Ctx)}
			alg := offload.Ed25519
			switch {
			case v.PH:
				alg = offload.Ed25519ph
				opts.Hash = crypto.SHA512
				req = &offload.SignRequest{Digest: hashOf(crypto.SHA512, v.Msg)}
			case len(v.Ctx) > 0:
				alg = offload.Ed25519ctx
			}
			req.Opts = opts
			// The vector checks itself against the standard library.
			if want, err := priv.Sign(nil, req.Input(), opts); err != nil || !bytes.Equal(want, v.Sig) {
				t.Fatalf("the standard library disagrees with the vector: %v", err)
			}
			if !s.info.Supports(alg) {
				t.Skipf("%v is not claimed", alg)
			}
			req.Key = s.importKey(t, priv)
			sig, ok := s.sign(t, req)
			if ok && !bytes.Equal(sig, v.Sig) {
				t.Errorf("signature differs from RFC 8032's")
			}
		})
	}
}

// rfc8032Ed448 checks RFC 8032 section 7.4-7.5 vectors byte for byte.
func (s *suite) rfc8032Ed448(t *testing.T) {
	var f rfc8032File
	loadJSON(t, "rfc8032/ed448.json", &f)
	if s.Import == nil {
		t.Skip("published vectors need Setup.Import")
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			priv := ed448.NewKeyFromSeed(v.SK)
			if !bytes.Equal(priv.Public().(ed448.PublicKey), v.PK) {
				t.Fatal("vector's seed does not give its public key")
			}
			opts := ed448.SignerOptions{Context: string(v.Ctx), Scheme: ed448.ED448}
			want := ed448.Sign(priv, v.Msg, string(v.Ctx))
			if v.PH {
				opts.Scheme = ed448.ED448Ph
				want = ed448.SignPh(priv, v.Msg, string(v.Ctx))
			}
			if !bytes.Equal(want, v.Sig) {
				t.Fatal("circl disagrees with the vector")
			}
			key := s.importKey(t, priv)
			sig, ok := s.sign(t, &offload.SignRequest{Key: key, Message: v.Msg, Opts: opts})
			if ok && !bytes.Equal(sig, v.Sig) {
				t.Errorf("signature differs from RFC 8032's")
			}
		})
	}
}
