package soft

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
	"crypto/sha512"
	"encoding"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/offcrypt/offcrypt/offload"
)

// newEngine returns an engine closed when the test ends.
func newEngine(t *testing.T, o Options) *Engine {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func wait[T any](t *testing.T, f *offload.Future[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := f.Wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("future did not resolve")
	}
	return v, err
}

func mustImport(t *testing.T, e *Engine, priv any) *offload.Key {
	t.Helper()
	k, err := e.ImportKey(priv)
	if err != nil {
		t.Fatalf("ImportKey(%T): %v", priv, err)
	}
	return k
}

var (
	rsaOnce sync.Once
	rsaPriv *rsa.PrivateKey
)

// testRSA returns one 2048-bit key shared by the tests.
func testRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		rsaPriv, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return rsaPriv
}

func hashOf(h crypto.Hash, msg []byte) []byte {
	if h == 0 {
		return msg
	}
	d := h.New()
	d.Write(msg)
	return d.Sum(nil)
}

func TestSign(t *testing.T) {
	e := newEngine(t, Options{Workers: 2})
	msg := []byte("offloaded message to be signed")

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rk := testRSA(t)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ed448Pub, ed448Priv, _ := ed448.GenerateKey(rand.Reader)
	ml44Pub, ml44Priv, _ := mldsa44.GenerateKey(rand.Reader)
	ml65Pub, ml65Priv, _ := mldsa65.GenerateKey(rand.Reader)
	ml87Pub, ml87Priv, _ := mldsa87.GenerateKey(rand.Reader)

	ecdsaVerify := func(pub *ecdsa.PublicKey, h crypto.Hash) func([]byte) bool {
		return func(sig []byte) bool { return ecdsa.VerifyASN1(pub, hashOf(h, msg), sig) }
	}
	pssVerify := func(h crypto.Hash, salt int) func([]byte) bool {
		return func(sig []byte) bool {
			return rsa.VerifyPSS(&rk.PublicKey, h, hashOf(h, msg), sig, &rsa.PSSOptions{SaltLength: salt}) == nil
		}
	}
	edVerify := func(o *ed25519.Options) func([]byte) bool {
		return func(sig []byte) bool {
			return ed25519.VerifyWithOptions(edPriv.Public().(ed25519.PublicKey), hashOf(o.Hash, msg), sig, o) == nil
		}
	}
	ed448Verify := func(o ed448.SignerOptions) func([]byte) bool {
		return func(sig []byte) bool { return ed448.VerifyAny(ed448Pub, msg, sig, o) }
	}

	tests := []struct {
		name    string
		priv    any
		opts    crypto.SignerOpts
		alg     offload.Algorithm
		verify  func(sig []byte) bool
		message bool // only the Message form (the digest form is the same input)
	}{
		{"ECDSA-P256", p256, crypto.SHA256, offload.ECDSAP256, ecdsaVerify(&p256.PublicKey, crypto.SHA256), false},
		{"ECDSA-P384", p384, crypto.SHA384, offload.ECDSAP384, ecdsaVerify(&p384.PublicKey, crypto.SHA384), false},
		{"ECDSA-P521", p521, crypto.SHA512, offload.ECDSAP521, ecdsaVerify(&p521.PublicKey, crypto.SHA512), false},
		{"ECDSA-P256-SHA384", p256, crypto.SHA384, offload.ECDSAP256, ecdsaVerify(&p256.PublicKey, crypto.SHA384), false},
		{"RSA-PKCS1v15-SHA256", rk, crypto.SHA256, offload.RSAPKCS1v15, func(sig []byte) bool {
			return rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, hashOf(crypto.SHA256, msg), sig) == nil
		}, false},
		{"RSA-PKCS1v15-SHA512", rk, crypto.SHA512, offload.RSAPKCS1v15, func(sig []byte) bool {
			return rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA512, hashOf(crypto.SHA512, msg), sig) == nil
		}, false},
		{"RSA-PKCS1v15-raw", rk, crypto.Hash(0), offload.RSAPKCS1v15, func(sig []byte) bool {
			return rsa.VerifyPKCS1v15(&rk.PublicKey, 0, msg, sig) == nil
		}, false},
		{"RSA-PSS-auto", rk, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}, offload.RSAPSS,
			pssVerify(crypto.SHA256, rsa.PSSSaltLengthAuto), false},
		{"RSA-PSS-equals-hash", rk, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, offload.RSAPSS,
			pssVerify(crypto.SHA256, rsa.PSSSaltLengthEqualsHash), false},
		{"RSA-PSS-explicit", rk, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA384}, offload.RSAPSS,
			pssVerify(crypto.SHA384, 20), false},
		{"Ed25519", edPriv, crypto.Hash(0), offload.Ed25519, edVerify(&ed25519.Options{}), false},
		{"Ed25519-nil-opts", edPriv, nil, offload.Ed25519, edVerify(&ed25519.Options{}), false},
		{"Ed25519ph", edPriv, crypto.SHA512, offload.Ed25519ph, edVerify(&ed25519.Options{Hash: crypto.SHA512}), false},
		{"Ed25519ph-ctx", edPriv, &ed25519.Options{Hash: crypto.SHA512, Context: "ph ctx"}, offload.Ed25519ph,
			edVerify(&ed25519.Options{Hash: crypto.SHA512, Context: "ph ctx"}), false},
		{"Ed25519ctx", edPriv, &ed25519.Options{Context: "a context"}, offload.Ed25519ctx,
			edVerify(&ed25519.Options{Context: "a context"}), false},
		{"Ed448", ed448Priv, crypto.Hash(0), offload.Ed448, ed448Verify(ed448.SignerOptions{}), false},
		{"Ed448-ctx", ed448Priv, ed448.SignerOptions{Context: "ctx448"}, offload.Ed448,
			ed448Verify(ed448.SignerOptions{Context: "ctx448"}), false},
		{"Ed448ph", ed448Priv, &ed448.SignerOptions{Scheme: ed448.ED448Ph}, offload.Ed448,
			ed448Verify(ed448.SignerOptions{Scheme: ed448.ED448Ph}), false},
		{"ML-DSA-44", ml44Priv, nil, offload.MLDSA44, func(sig []byte) bool { return mldsa44.Verify(ml44Pub, msg, nil, sig) }, false},
		{"ML-DSA-65-ctx", ml65Priv, &offload.MLDSAOptions{Context: []byte("mctx")}, offload.MLDSA65,
			func(sig []byte) bool { return mldsa65.Verify(ml65Pub, msg, []byte("mctx"), sig) }, false},
		{"ML-DSA-87", ml87Priv, crypto.Hash(0), offload.MLDSA87, func(sig []byte) bool { return mldsa87.Verify(ml87Pub, msg, nil, sig) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := mustImport(t, e, tt.priv)
			if !e.Info().Supports(tt.alg) {
				t.Fatalf("Info does not list %v", tt.alg)
			}
			var h crypto.Hash
			if tt.opts != nil {
				h = tt.opts.HashFunc()
			}
			for _, form := range []string{"digest", "message", "digest-inline", "message-inline"} {
				req := &offload.SignRequest{Key: key, Opts: tt.opts}
				req.Inline = form == "digest-inline" || form == "message-inline"
				if form == "message" || form == "message-inline" {
					req.Message = bytes.Clone(msg)
				} else {
					req.Digest = hashOf(h, msg)
				}
				if p, err := req.Check(); err != nil || p.Alg != tt.alg {
					t.Fatalf("%s: Check = %+v, %v; want %v", form, p, err, tt.alg)
				}
				sig, err := wait(t, e.Sign(context.Background(), req))
				if err != nil {
					t.Fatalf("%s: Sign: %v", form, err)
				}
				if !tt.verify(sig) {
					t.Fatalf("%s: signature does not verify", form)
				}
				sig[len(sig)/2] ^= 1
				if tt.verify(sig) {
					t.Fatalf("%s: corrupted signature verifies", form)
				}
			}
		})
	}
}

func TestSignPSSEqualsHashIsExact(t *testing.T) {
	e := newEngine(t, Options{})
	rk := testRSA(t)
	key := mustImport(t, e, rk)
	d := sha256.Sum256([]byte("pss"))
	sig, err := wait(t, e.Sign(context.Background(), &offload.SignRequest{Key: key, Digest: d[:],
		Opts: &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}}))
	if err != nil {
		t.Fatal(err)
	}
	// An explicit salt length must match exactly: 32 verifies, 20 does not.
	if err := rsa.VerifyPSS(&rk.PublicKey, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatalf("salt 32: %v", err)
	}
	if err := rsa.VerifyPSS(&rk.PublicKey, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 20}); err == nil {
		t.Fatal("salt 20 verified a salt-32 signature")
	}
}

func TestMLDSADeterministic(t *testing.T) {
	e := newEngine(t, Options{})
	pub, priv, _ := mldsa44.GenerateKey(rand.Reader)
	key := mustImport(t, e, priv)
	msg := []byte("deterministic")
	sign := func(o *offload.MLDSAOptions) []byte {
		sig, err := wait(t, e.Sign(context.Background(), &offload.SignRequest{Key: key, Message: msg, Opts: o}))
		if err != nil {
			t.Fatal(err)
		}
		if !mldsa44.Verify(pub, msg, o.Context, sig) {
			t.Fatal("signature does not verify")
		}
		return sig
	}
	det := &offload.MLDSAOptions{Context: []byte("c"), Deterministic: true}
	if a, b := sign(det), sign(det); !bytes.Equal(a, b) {
		t.Fatal("deterministic signatures differ")
	}
	hedged := &offload.MLDSAOptions{Context: []byte("c")}
	if a, b := sign(hedged), sign(hedged); bytes.Equal(a, b) {
		t.Fatal("hedged signatures are equal")
	}
}

func TestGenerateKey(t *testing.T) {
	e := newEngine(t, Options{})
	msg := []byte("generated")
	for _, tt := range []struct {
		t    offload.KeyType
		bits int
		want int
	}{
		{offload.KeyECDSAP256, 0, 256}, {offload.KeyECDSAP384, 0, 384}, {offload.KeyECDSAP521, 0, 521},
		{offload.KeyRSA, 0, 2048}, {offload.KeyEd25519, 0, 256}, {offload.KeyEd448, 0, 448},
		{offload.KeyMLDSA44, 0, 0}, {offload.KeyMLDSA65, 0, 0}, {offload.KeyMLDSA87, 0, 0},
		{offload.KeyAES, 0, 256}, {offload.KeyAES, 128, 128},
	} {
		t.Run(tt.t.String(), func(t *testing.T) {
			k, err := e.GenerateKey(context.Background(), tt.t, tt.bits)
			if err != nil {
				t.Fatal(err)
			}
			if k.Type() != tt.t || k.Bits() != tt.want || k.Engine() != offload.Engine(e) {
				t.Fatalf("key %v/%d/%v", k.Type(), k.Bits(), k.Engine())
			}
			if tt.t == offload.KeyAES {
				return
			}
			req := &offload.SignRequest{Key: k, Message: msg}
			switch tt.t {
			case offload.KeyECDSAP256, offload.KeyECDSAP384, offload.KeyECDSAP521, offload.KeyRSA:
				req.Opts = crypto.SHA256
			}
			sig, err := wait(t, e.Sign(context.Background(), req))
			if err != nil {
				t.Fatal(err)
			}
			ok := false
			switch pub := k.Public().(type) {
			case *ecdsa.PublicKey:
				ok = ecdsa.VerifyASN1(pub, hashOf(crypto.SHA256, msg), sig)
			case *rsa.PublicKey:
				ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashOf(crypto.SHA256, msg), sig) == nil
			case ed25519.PublicKey:
				ok = ed25519.Verify(pub, msg, sig)
			case ed448.PublicKey:
				ok = ed448.Verify(pub, msg, sig, "")
			case *mldsa44.PublicKey:
				ok = mldsa44.Verify(pub, msg, nil, sig)
			case *mldsa65.PublicKey:
				ok = mldsa65.Verify(pub, msg, nil, sig)
			case *mldsa87.PublicKey:
				ok = mldsa87.Verify(pub, msg, nil, sig)
			default:
				t.Fatalf("public key of type %T", pub)
			}
			if !ok {
				t.Fatal("signature does not verify")
			}
		})
	}
}

func TestDecrypt(t *testing.T) {
	e := newEngine(t, Options{})
	rk := testRSA(t)
	key := mustImport(t, e, rk)
	secret := []byte("the session key!")

	v15, _ := rsa.EncryptPKCS1v15(rand.Reader, &rk.PublicKey, secret)
	// An OAEP block also unpads as PKCS #1 v1.5 about once in 2^16 tries:
	// take one that does not, as crypto/rsa says, so that the
	// PKCS1v15-on-OAEP case cannot pass or fail by chance.
	var oaep []byte
	for {
		oaep, _ = rsa.EncryptOAEP(sha256.New(), rand.Reader, &rk.PublicKey, secret, []byte("label"))
		if _, err := rsa.DecryptPKCS1v15(nil, rk, oaep); err != nil {
			break
		}
	}
	oaepMGF, _ := rsa.EncryptOAEPWithOptions(rand.Reader, &rk.PublicKey, secret,
		&rsa.OAEPOptions{Hash: crypto.SHA384, MGFHash: crypto.SHA256, Label: []byte("l2")})
	bad := bytes.Clone(oaep)
	bad[10] ^= 1

	tests := []struct {
		name    string
		ct      []byte
		opts    crypto.DecrypterOpts
		want    []byte // nil: any plaintext of the session key length
		wantErr error
	}{
		{"PKCS1v15-nil", v15, nil, secret, nil},
		{"PKCS1v15-opts", v15, &rsa.PKCS1v15DecryptOptions{}, secret, nil},
		{"PKCS1v15-session-key", v15, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)}, secret, nil},
		{"PKCS1v15-session-key-wrong-len", v15, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 8}, nil, nil},
		{"OAEP", oaep, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}, secret, nil},
		{"OAEP-MGF", oaepMGF, &rsa.OAEPOptions{Hash: crypto.SHA384, MGFHash: crypto.SHA256, Label: []byte("l2")}, secret, nil},
		{"OAEP-wrong-label", oaep, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("other")}, nil, rsa.ErrDecryption},
		{"OAEP-tampered", bad, &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}, nil, rsa.ErrDecryption},
		{"PKCS1v15-on-OAEP", oaep, nil, nil, rsa.ErrDecryption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, inline := range []bool{false, true} {
				req := &offload.DecryptRequest{Key: key, Ciphertext: tt.ct, Opts: tt.opts}
				req.Inline = inline
				pt, err := wait(t, e.Decrypt(context.Background(), req))
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if tt.want != nil && !bytes.Equal(pt, tt.want) {
					t.Fatalf("plaintext %q, want %q", pt, tt.want)
				}
				if o, ok := tt.opts.(*rsa.PKCS1v15DecryptOptions); ok && o.SessionKeyLen > 0 && len(pt) != o.SessionKeyLen {
					t.Fatalf("session key of %d bytes, want %d", len(pt), o.SessionKeyLen)
				}
			}
		})
	}
}

func TestHashChain(t *testing.T) {
	e := newEngine(t, Options{MaxInline: 1024})
	data := make([]byte, 5000)
	rand.Read(data)
	for _, h := range []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			bs := h.New().BlockSize()
			chunk := (1024 / bs) * bs
			var state []byte
			rest := data
			for n := 0; len(rest) > chunk; n++ {
				res, err := wait(t, e.Hash(context.Background(), &offload.HashRequest{
					Call: offload.Call{Inline: n%2 == 0}, Hash: h, State: state, Data: rest[:chunk]}))
				if err != nil {
					t.Fatal(err)
				}
				if res.State == nil || res.Sum != nil {
					t.Fatalf("non-final result %+v", res)
				}
				// The state is the standard library's own.
				d := h.New()
				if err := d.(encoding.BinaryUnmarshaler).UnmarshalBinary(res.State); err != nil {
					t.Fatalf("state does not unmarshal into %v: %v", h, err)
				}
				state, rest = res.State, rest[chunk:]
			}
			res, err := wait(t, e.Hash(context.Background(), &offload.HashRequest{Hash: h, State: state, Data: rest, Final: true}))
			if err != nil {
				t.Fatal(err)
			}
			if want := hashOf(h, data); !bytes.Equal(res.Sum, want) {
				t.Fatalf("sum %x, want %x", res.Sum, want)
			}
			// A fresh single request, and the empty input.
			res, err = wait(t, e.Hash(context.Background(), &offload.HashRequest{Hash: h, Final: true}))
			if err != nil || !bytes.Equal(res.Sum, hashOf(h, nil)) {
				t.Fatalf("empty: %x, %v", res.Sum, err)
			}
		})
	}
	// The standard library's state is taken as input too.
	d := sha512.New384()
	d.Write(data[:256])
	st, _ := d.(encoding.BinaryMarshaler).MarshalBinary()
	res, err := wait(t, e.Hash(context.Background(), &offload.HashRequest{Hash: crypto.SHA384, State: st, Data: data[256:300], Final: true}))
	if err != nil || !bytes.Equal(res.Sum, hashOf(crypto.SHA384, data[:300])) {
		t.Fatalf("resume from stdlib state: %x, %v", res.Sum, err)
	}
}

// BenchmarkSign compares a signature through the engine (inline, and on a
// worker) with the same signature made directly.
func BenchmarkSign(b *testing.B) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	d := sha256.Sum256([]byte("bench"))
	ctx := context.Background()
	for _, k := range []struct {
		name   string
		priv   any
		opts   crypto.SignerOpts
		direct func() error
	}{
		{"ECDSA-P256", p256, crypto.SHA256, func() error { _, err := ecdsa.SignASN1(rand.Reader, p256, d[:]); return err }},
		{"Ed25519", edPriv, crypto.Hash(0), func() error { _ = ed25519.Sign(edPriv, d[:]); return nil }},
	} {
		key, err := e.ImportKey(k.priv)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(k.name+"/direct", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := k.direct(); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, inline := range []bool{true, false} {
			name := k.name + "/worker"
			if inline {
				name = k.name + "/inline"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				req := &offload.SignRequest{Call: offload.Call{Inline: inline}, Key: key, Digest: d[:], Opts: k.opts}
				for b.Loop() {
					if _, err := e.Sign(ctx, req).Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
