package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/signer"
)

// An engineCase makes a fresh engine for a test, closed when the test ends.
type engineCase struct {
	name string
	new  func(t *testing.T, inj inject.Options) (offload.Engine, offload.Importer)
}

// engines lists the engines every table runs on; soft_test.go adds the
// software engine.
var engines = []engineCase{{"fake", func(t *testing.T, inj inject.Options) (offload.Engine, offload.Importer) {
	e := newFake(inj)
	t.Cleanup(func() { e.Close() })
	return e, e
}}}

var (
	keyP256 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	keyP384 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	keyP521 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)) })
	keyRSA  = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	keyEd   = sync.OnceValue(func() ed25519.PrivateKey { _, k := must2(ed25519.GenerateKey(rand.Reader)); return k })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func importKey(t *testing.T, imp offload.Importer, priv any) *offload.Key {
	t.Helper()
	k, err := imp.ImportKey(priv)
	if err != nil {
		t.Fatalf("ImportKey(%T): %v", priv, err)
	}
	return k
}

func newSigner(t *testing.T, imp offload.Importer, priv any) *signer.Signer {
	t.Helper()
	s, err := signer.New(importKey(t, imp, priv))
	if err != nil {
		t.Fatalf("signer.New: %v", err)
	}
	return s
}

// digestOf hashes msg with opts' hash, or returns msg when it has none.
func digestOf(msg []byte, opts crypto.SignerOpts) []byte {
	h := crypto.Hash(0)
	if opts != nil {
		h = opts.HashFunc()
	}
	if h == 0 {
		return msg
	}
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// verify checks sig over msg with the standard library.
func verify(pub crypto.PublicKey, msg, sig []byte, opts crypto.SignerOpts) error {
	digest := digestOf(msg, opts)
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("ecdsa: verification failed")
		}
		return nil
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(pub, pss.Hash, digest, sig, pss)
		}
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
	case ed25519.PublicKey:
		o := &ed25519.Options{}
		if eo, ok := opts.(*ed25519.Options); ok {
			o = eo
		}
		return ed25519.VerifyWithOptions(pub, digest, sig, o)
	}
	return fmt.Errorf("no verifier for %T", pub)
}

type signCase struct {
	name string
	priv func() crypto.Signer
	opts crypto.SignerOpts
	// verifyOpts, when set, verify instead of opts (PSS salt modes that
	// the verifier cannot take as they are).
	verifyOpts crypto.SignerOpts
}

func signCases() []signCase {
	p256 := func() crypto.Signer { return keyP256() }
	r := func() crypto.Signer { return keyRSA() }
	ed := func() crypto.Signer { return keyEd() }
	// The largest salt for a 2048-bit key and SHA-256: what SaltLengthAuto signs with.
	maxSalt := 2048/8 - 32 - 2
	return []signCase{
		{name: "ECDSA-P256/SHA-256", priv: p256, opts: crypto.SHA256},
		{name: "ECDSA-P256/SHA-384", priv: p256, opts: crypto.SHA384},
		{name: "ECDSA-P384/SHA-384", priv: func() crypto.Signer { return keyP384() }, opts: crypto.SHA384},
		{name: "ECDSA-P521/SHA-512", priv: func() crypto.Signer { return keyP521() }, opts: crypto.SHA512},
		{name: "RSA-PKCS1v15/SHA-256", priv: r, opts: crypto.SHA256},
		{name: "RSA-PKCS1v15/SHA-512", priv: r, opts: crypto.SHA512},
		{name: "RSA-PSS/EqualsHash", priv: r, opts: &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256},
			verifyOpts: &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}},
		{name: "RSA-PSS/Auto", priv: r, opts: &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256},
			verifyOpts: &rsa.PSSOptions{SaltLength: maxSalt, Hash: crypto.SHA256}},
		{name: "RSA-PSS/20", priv: r, opts: &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256}},
		{name: "RSA-PSS/0", priv: r, opts: &rsa.PSSOptions{SaltLength: 0, Hash: crypto.SHA384},
			verifyOpts: &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA384}},
		{name: "Ed25519", priv: ed, opts: crypto.Hash(0)},
		{name: "Ed25519/nil-opts", priv: ed, opts: nil},
		{name: "Ed25519ph", priv: ed, opts: &ed25519.Options{Hash: crypto.SHA512}},
		{name: "Ed25519ctx", priv: ed, opts: &ed25519.Options{Context: "offcrypt test"}},
	}
}

// TestSign signs through Sign, SignContext, SignMessage and the async forms,
// and verifies every signature with the standard library.
func TestSign(t *testing.T) {
	msg := []byte("the quick brown fox jumps over the lazy dog")
	for _, ec := range engines {
		t.Run(ec.name, func(t *testing.T) {
			_, imp := ec.new(t, inject.Options{})
			for _, c := range signCases() {
				t.Run(c.name, func(t *testing.T) {
					s := newSigner(t, imp, c.priv())
					if !publicEqual(s.Public(), c.priv().Public()) {
						t.Fatalf("Public() = %v, want the key's public half", s.Public())
					}
					vo := c.opts
					if c.verifyOpts != nil {
						vo = c.verifyOpts
					}
					digest := digestOf(msg, c.opts)
					ctx := context.Background()
					forms := []struct {
						name string
						sign func() ([]byte, error)
					}{
						{"Sign", func() ([]byte, error) { return s.Sign(rand.Reader, digest, c.opts) }},
						{"SignContext", func() ([]byte, error) { return s.SignContext(ctx, digest, c.opts) }},
						{"SignAsync", func() ([]byte, error) { return s.SignAsync(ctx, digest, c.opts).Wait(ctx) }},
						{"SignMessage", func() ([]byte, error) { return s.SignMessage(nil, msg, c.opts) }},
						{"SignMessageContext", func() ([]byte, error) { return s.SignMessageContext(ctx, msg, c.opts) }},
						{"SignMessageAsync", func() ([]byte, error) { return s.SignMessageAsync(ctx, msg, c.opts).Wait(ctx) }},
						{"crypto.SignMessage", func() ([]byte, error) { return crypto.SignMessage(s, rand.Reader, msg, c.opts) }},
					}
					for _, f := range forms {
						sig, err := f.sign()
						if err != nil {
							t.Fatalf("%s: %v", f.name, err)
						}
						if err := verify(s.Public(), msg, sig, vo); err != nil {
							t.Errorf("%s: signature does not verify: %v", f.name, err)
						}
						// The signature must be for this message, not any.
						if err := verify(s.Public(), []byte("another message"), sig, vo); err == nil {
							t.Errorf("%s: signature verifies for another message", f.name)
						}
					}
				})
			}
		})
	}
}

func publicEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// TestSignEmpty signs empty and nil input where the algorithm allows it.
func TestSignEmpty(t *testing.T) {
	for _, ec := range engines {
		t.Run(ec.name, func(t *testing.T) {
			_, imp := ec.new(t, inject.Options{})
			ed := newSigner(t, imp, keyEd())
			p256 := newSigner(t, imp, keyP256())
			for _, in := range [][]byte{nil, {}} {
				sig, err := ed.Sign(nil, in, crypto.Hash(0))
				if err != nil || verify(ed.Public(), nil, sig, crypto.Hash(0)) != nil {
					t.Errorf("Ed25519 Sign(%v): err %v, or signature does not verify", in, err)
				}
				sig, err = p256.SignMessage(nil, in, crypto.SHA256)
				if err != nil || verify(p256.Public(), nil, sig, crypto.SHA256) != nil {
					t.Errorf("ECDSA SignMessage(%v): err %v, or signature does not verify", in, err)
				}
			}
		})
	}
}

type decryptCase struct {
	name    string
	encrypt func(pub *rsa.PublicKey, msg []byte) []byte
	opts    crypto.DecrypterOpts
}

func TestDecrypt(t *testing.T) {
	msg := []byte("sixteen byte key")
	oaep := func(h, mgf crypto.Hash, label string) func(*rsa.PublicKey, []byte) []byte {
		return func(pub *rsa.PublicKey, m []byte) []byte {
			if mgf == 0 || mgf == h {
				return must(rsa.EncryptOAEP(h.New(), rand.Reader, pub, m, []byte(label)))
			}
			return must(rsa.EncryptOAEPWithOptions(rand.Reader, pub, m, &rsa.OAEPOptions{Hash: h, MGFHash: mgf, Label: []byte(label)}))
		}
	}
	pkcs1 := func(pub *rsa.PublicKey, m []byte) []byte { return must(rsa.EncryptPKCS1v15(rand.Reader, pub, m)) }
	cases := []decryptCase{
		{"OAEP/SHA-256", oaep(crypto.SHA256, 0, ""), &rsa.OAEPOptions{Hash: crypto.SHA256}},
		{"OAEP/SHA-256/label", oaep(crypto.SHA256, 0, "a label"), &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("a label")}},
		{"OAEP/SHA-384/MGF-SHA-256", oaep(crypto.SHA384, crypto.SHA256, "x"), &rsa.OAEPOptions{Hash: crypto.SHA384, MGFHash: crypto.SHA256, Label: []byte("x")}},
		{"PKCS1v15/nil-opts", pkcs1, nil},
		{"PKCS1v15/opts", pkcs1, &rsa.PKCS1v15DecryptOptions{}},
		{"PKCS1v15/SessionKeyLen", pkcs1, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(msg)}},
	}
	for _, ec := range engines {
		t.Run(ec.name, func(t *testing.T) {
			_, imp := ec.new(t, inject.Options{})
			d, err := signer.NewDecrypter(importKey(t, imp, keyRSA()))
			if err != nil {
				t.Fatal(err)
			}
			pub := d.Public().(*rsa.PublicKey)
			ctx := context.Background()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ct := c.encrypt(pub, msg)
					forms := []struct {
						name string
						dec  func() ([]byte, error)
					}{
						{"Decrypt", func() ([]byte, error) { return d.Decrypt(rand.Reader, ct, c.opts) }},
						{"DecryptContext", func() ([]byte, error) { return d.DecryptContext(ctx, ct, c.opts) }},
						{"DecryptAsync", func() ([]byte, error) { return d.DecryptAsync(ctx, ct, c.opts).Wait(ctx) }},
					}
					for _, f := range forms {
						pt, err := f.dec()
						if err != nil || !bytes.Equal(pt, msg) {
							t.Errorf("%s = %q, %v; want %q", f.name, pt, err, msg)
						}
					}
				})
			}
			t.Run("OAEP/wrong-label", func(t *testing.T) {
				ct := oaep(crypto.SHA256, 0, "right")(pub, msg)
				_, err := d.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("wrong")})
				if !errors.Is(err, rsa.ErrDecryption) {
					t.Errorf("err = %v, want rsa.ErrDecryption", err)
				}
			})
			// With SessionKeyLen, a ciphertext holding a key of another length
			// decrypts to random bytes of the asked length and no error, as
			// rsa.PrivateKey.Decrypt does; without it, it fails.
			t.Run("PKCS1v15/SessionKeyLen-mismatch", func(t *testing.T) {
				ct := pkcs1(pub, []byte("short"))
				opts := &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}
				want, wantErr := keyRSA().Decrypt(rand.Reader, ct, opts)
				got, err := d.Decrypt(nil, ct, opts)
				if (err == nil) != (wantErr == nil) || len(got) != len(want) {
					t.Errorf("Decrypt = %d bytes, %v; rsa.PrivateKey.Decrypt = %d bytes, %v", len(got), err, len(want), wantErr)
				}
				if bytes.Equal(got, []byte("short")) {
					t.Errorf("Decrypt leaked the wrong-length plaintext")
				}
				bad := make([]byte, len(ct))
				copy(bad, ct)
				bad[0] ^= 0xff // no longer below the modulus, or no longer valid padding
				if _, err := d.Decrypt(nil, bad, nil); err == nil {
					t.Errorf("Decrypt of a corrupted ciphertext without SessionKeyLen succeeded")
				}
			})
			// The Decrypter signs too.
			t.Run("Sign", func(t *testing.T) {
				digest := sha256.Sum256([]byte("m"))
				sig, err := d.Sign(nil, digest[:], crypto.SHA256)
				if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
					t.Errorf("Sign: %v, or signature does not verify", err)
				}
				if d.Key() == nil || d.Key().Type() != offload.KeyRSA {
					t.Errorf("Key() = %v", d.Key())
				}
			})
		})
	}
}

// TestBadInput checks that bad input fails cleanly, with the right sentinel.
func TestBadInput(t *testing.T) {
	for _, ec := range engines {
		t.Run(ec.name, func(t *testing.T) {
			eng, imp := ec.new(t, inject.Options{})
			p256 := newSigner(t, imp, keyP256())
			ed := newSigner(t, imp, keyEd())
			rsaKey := importKey(t, imp, keyRSA())
			d, err := signer.NewDecrypter(rsaKey)
			if err != nil {
				t.Fatal(err)
			}
			digest32 := make([]byte, 32)
			ct := must(rsa.EncryptPKCS1v15(rand.Reader, &keyRSA().PublicKey, []byte("x")))
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			var zero signer.Signer
			var zeroD signer.Decrypter
			cases := []struct {
				name string
				call func(t testing.TB) error
				want error
			}{
				{"New(nil)", func(t testing.TB) error { _, err := signer.New(nil); return err }, offload.ErrInvalid},
				{"New(AES)", func(t testing.TB) error {
					_, err := signer.New(offload.NewKey(eng, offload.KeyAES, 128, nil, nil))
					return err
				}, offload.ErrInvalid},
				{"New(no engine)", func(t testing.TB) error {
					_, err := signer.New(offload.NewKey(nil, offload.KeyECDSAP256, 256, keyP256().Public(), nil))
					return err
				}, offload.ErrInvalid},
				{"NewDecrypter(nil)", func(t testing.TB) error { _, err := signer.NewDecrypter(nil); return err }, offload.ErrInvalid},
				{"NewDecrypter(ECDSA)", func(t testing.TB) error { _, err := signer.NewDecrypter(p256.Key()); return err }, offload.ErrInvalid},
				{"NewDecrypter(Ed25519)", func(t testing.TB) error { _, err := signer.NewDecrypter(ed.Key()); return err }, offload.ErrInvalid},
				{"digest too short", func(t testing.TB) error { _, err := p256.Sign(nil, digest32[:20], crypto.SHA256); return err }, offload.ErrInvalid},
				{"digest too long", func(t testing.TB) error { _, err := p256.Sign(nil, digest32, crypto.SHA1); return err }, offload.ErrInvalid},
				{"nil digest", func(t testing.TB) error { _, err := p256.Sign(nil, nil, crypto.SHA256); return err }, offload.ErrInvalid},
				{"empty digest", func(t testing.TB) error { _, err := p256.Sign(nil, []byte{}, crypto.SHA256); return err }, offload.ErrInvalid},
				{"ECDSA zero hash", func(t testing.TB) error { _, err := p256.Sign(nil, digest32, crypto.Hash(0)); return err }, offload.ErrInvalid},
				{"ECDSA nil opts", func(t testing.TB) error { _, err := p256.Sign(nil, digest32, nil); return err }, offload.ErrInvalid},
				{"ECDSA unknown hash", func(t testing.TB) error { _, err := p256.Sign(nil, digest32, crypto.Hash(99)); return err }, offload.ErrInvalid},
				{"ECDSA PSS opts", func(t testing.TB) error {
					_, err := p256.Sign(nil, digest32, &rsa.PSSOptions{Hash: crypto.SHA256})
					return err
				}, offload.ErrInvalid},
				{"ECDSA Ed25519 opts", func(t testing.TB) error { _, err := p256.Sign(nil, digest32, &ed25519.Options{}); return err }, offload.ErrInvalid},
				{"Ed25519 SHA-256", func(t testing.TB) error { _, err := ed.Sign(nil, digest32, crypto.SHA256); return err }, offload.ErrInvalid},
				{"Ed25519 PSS opts", func(t testing.TB) error { _, err := ed.Sign(nil, digest32, &rsa.PSSOptions{}); return err }, offload.ErrInvalid},
				{"RSA-PSS zero hash", func(t testing.TB) error { _, err := d.Sign(nil, digest32, &rsa.PSSOptions{}); return err }, offload.ErrInvalid},
				{"RSA Ed25519 opts", func(t testing.TB) error { _, err := d.Sign(nil, digest32, &ed25519.Options{}); return err }, offload.ErrInvalid},
				{"Decrypt nil", func(t testing.TB) error { _, err := d.Decrypt(nil, nil, nil); return err }, offload.ErrInvalid},
				{"Decrypt empty", func(t testing.TB) error { _, err := d.Decrypt(nil, []byte{}, nil); return err }, offload.ErrInvalid},
				{"Decrypt bad opts", func(t testing.TB) error { _, err := d.Decrypt(nil, ct, crypto.SHA256); return err }, offload.ErrInvalid},
				{"DecryptAsync bad opts", func(t testing.TB) error {
					_, err := testwait.Wait(t, d.DecryptAsync(context.Background(), ct, "oaep"), "DecryptAsync")
					return err
				}, offload.ErrInvalid},
				{"zero Signer Sign", func(t testing.TB) error { _, err := zero.Sign(nil, digest32, crypto.SHA256); return err }, offload.ErrInvalid},
				{"zero Signer SignAsync", func(t testing.TB) error { return zero.SignAsync(context.Background(), digest32, crypto.SHA256).Err() }, offload.ErrInvalid},
				{"zero Decrypter", func(t testing.TB) error { _, err := zeroD.Decrypt(nil, ct, nil); return err }, offload.ErrInvalid},
				{"nil Signer", func(t testing.TB) error { _, err := (*signer.Signer)(nil).SignMessage(nil, nil, nil); return err }, offload.ErrInvalid},
				{"cancelled Sign", func(t testing.TB) error { _, err := p256.SignContext(cancelled, digest32, crypto.SHA256); return err }, context.Canceled},
				{"cancelled SignMessage", func(t testing.TB) error { _, err := p256.SignMessageContext(cancelled, nil, crypto.SHA256); return err }, context.Canceled},
				{"cancelled SignAsync", func(t testing.TB) error {
					_, err := testwait.Wait(t, p256.SignAsync(cancelled, digest32, crypto.SHA256), "SignAsync")
					return err
				}, context.Canceled},
				{"cancelled Decrypt", func(t testing.TB) error { _, err := d.DecryptContext(cancelled, ct, nil); return err }, context.Canceled},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					err := c.call(t)
					if !errors.Is(err, c.want) {
						t.Fatalf("err = %v, want %v", err, c.want)
					}
				})
			}
			if zero.Public() != nil || zero.Key() != nil {
				t.Errorf("zero Signer has a public key")
			}
		})
	}
}

// TestClosed checks every call on a closed engine fails with ErrClosed.
func TestClosed(t *testing.T) {
	for _, ec := range engines {
		t.Run(ec.name, func(t *testing.T) {
			eng, imp := ec.new(t, inject.Options{})
			s := newSigner(t, imp, keyP256())
			d, err := signer.NewDecrypter(importKey(t, imp, keyRSA()))
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			digest := make([]byte, 32)
			ctx := context.Background()
			calls := map[string]func() error{
				"Sign":        func() error { _, err := s.Sign(nil, digest, crypto.SHA256); return err },
				"SignMessage": func() error { _, err := s.SignMessage(nil, digest, crypto.SHA256); return err },
				"SignAsync": func() error {
					_, err := testwait.Wait(t, s.SignAsync(ctx, digest, crypto.SHA256), "SignAsync after Close")
					return err
				},
				"Decrypt": func() error { _, err := d.Decrypt(nil, digest, nil); return err },
				"DecryptAsync": func() error {
					_, err := testwait.Wait(t, d.DecryptAsync(ctx, digest, nil), "DecryptAsync after Close")
					return err
				},
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, offload.ErrClosed) {
					t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
				}
			}
		})
	}
}

// TestNotDecrypter: only the RSA type may claim to decrypt, or crypto/tls
// refuses ECDSA and Ed25519 keys for TLS 1.2.
func TestNotDecrypter(t *testing.T) {
	var s any = (*signer.Signer)(nil)
	if _, ok := s.(crypto.Decrypter); ok {
		t.Fatal("*signer.Signer implements crypto.Decrypter")
	}
	var d any = (*signer.Decrypter)(nil)
	for name, ok := range map[string]bool{
		"crypto.Signer":        isA[crypto.Signer](d),
		"crypto.MessageSigner": isA[crypto.MessageSigner](d),
		"crypto.Decrypter":     isA[crypto.Decrypter](d),
	} {
		if !ok {
			t.Errorf("*signer.Decrypter does not implement %s", name)
		}
	}
}

func isA[I any](v any) bool { _, ok := v.(I); return ok }
