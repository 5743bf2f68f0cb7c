package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	_ "crypto/sha256" // hashes the suite signs with
	_ "crypto/sha512"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/offcrypt/offcrypt/offload"
)

func hashOf(h crypto.Hash, msg []byte) []byte {
	w := h.New()
	w.Write(msg)
	return w.Sum(nil)
}

// sign submits a request and waits for it; ok is false when a faulty run
// failed it on purpose.
func (s *suite) sign(t *testing.T, req *offload.SignRequest) ([]byte, bool) {
	t.Helper()
	return wait(t, s, s.Engine.Sign(context.Background(), req))
}

// algorithms checks every algorithm: claimed ones work, others are refused.
func (s *suite) algorithms(t *testing.T) {
	for a := offload.ECDSAP256; a <= offload.Random; a++ {
		t.Run(a.String(), func(t *testing.T) {
			if !s.info.Supports(a) {
				s.unsupported(t, a)
				return
			}
			switch a {
			case offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521:
				s.ecdsa(t, a)
			case offload.RSAPKCS1v15:
				s.forRSASizes(t, s.rsaPKCS1)
			case offload.RSAPSS:
				s.forRSASizes(t, s.rsaPSS)
			case offload.RSAOAEP:
				s.oaep(t)
			case offload.RSAPKCS1v15Decrypt:
				s.pkcs1Decrypt(t)
			case offload.Ed25519:
				s.ed25519Pure(t)
			case offload.Ed25519ph:
				s.ed25519ph(t)
			case offload.Ed25519ctx:
				s.ed25519ctx(t)
			case offload.Ed448:
				s.ed448(t)
			case offload.MLDSA44, offload.MLDSA65, offload.MLDSA87:
				s.mldsa(t, a)
			case offload.SHA224, offload.SHA256, offload.SHA384, offload.SHA512:
				if s.sessions != nil {
					s.hashSessions(t, hashOfAlg[a])
					return
				}
				s.hash(t, a)
				s.hashStreams(t, a)
			case offload.AESGCM:
				s.gcm(t)
			case offload.AESCBC:
				s.cbc(t)
			case offload.AESCTR:
				s.ctr(t)
			case offload.Random:
				s.random(t)
			}
		})
	}
}

func (s *suite) ecdsa(t *testing.T, a offload.Algorithm) {
	kp := s.key(t, keyTypeOf(a), 0)
	pub, ok := kp.key.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("public key is %T", kp.key.Public())
	}
	natural := map[offload.Algorithm]crypto.Hash{offload.ECDSAP256: crypto.SHA256, offload.ECDSAP384: crypto.SHA384, offload.ECDSAP521: crypto.SHA512}[a]
	for _, h := range []crypto.Hash{natural, crypto.SHA256, crypto.SHA512} {
		msg := []byte(fmt.Sprintf("conformance %v with %v", a, h))
		digest := hashOf(h, msg)
		for _, form := range []string{"digest", "message"} {
			req := &offload.SignRequest{Key: kp.key, Digest: digest, Opts: h}
			if form == "message" {
				req = &offload.SignRequest{Key: kp.key, Message: msg, Opts: h}
			}
			sig, ok := s.sign(t, req)
			if ok && !ecdsa.VerifyASN1(pub, digest, sig) {
				t.Errorf("%v %s: signature does not verify", h, form)
			}
		}
	}
}

// forRSASizes runs f with the smallest RSA size the engine takes and, when
// it takes it and keys can be made, 3072.
func (s *suite) forRSASizes(t *testing.T, f func(*testing.T, keyPair)) {
	sizes := []int{max(s.info.MinRSABits, 2048)}
	if s.info.MaxRSABits >= 3072 && sizes[0] < 3072 && (s.Import != nil || s.Generate != nil) {
		sizes = append(sizes, 3072)
	}
	for _, bits := range sizes {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			kp := s.key(t, offload.KeyRSA, bits)
			if _, ok := kp.key.Public().(*rsa.PublicKey); !ok {
				t.Fatalf("public key is %T", kp.key.Public())
			}
			f(t, kp)
		})
	}
}

func (s *suite) rsaPKCS1(t *testing.T, kp keyPair) {
	pub := kp.key.Public().(*rsa.PublicKey)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		msg := []byte("conformance PKCS #1 v1.5 " + h.String())
		digest := hashOf(h, msg)
		for _, form := range []string{"digest", "message"} {
			req := &offload.SignRequest{Key: kp.key, Digest: digest, Opts: h}
			if form == "message" {
				req = &offload.SignRequest{Key: kp.key, Message: msg, Opts: h}
			}
			sig, ok := s.sign(t, req)
			if !ok {
				continue
			}
			if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
				t.Errorf("%v %s: %v", h, form, err)
			}
			// PKCS #1 v1.5 is deterministic.
			if priv, ok := kp.priv.(*rsa.PrivateKey); ok {
				want, _ := rsa.SignPKCS1v15(nil, priv, h, digest)
				if !bytes.Equal(sig, want) {
					t.Errorf("%v %s: signature differs from the standard library's", h, form)
				}
			}
		}
	}
	// crypto.Hash(0) signs the input as it is (TLS 1.0's MD5+SHA-1), up to
	// k-11 bytes; one byte more fails before the device, as in crypto/rsa.
	m, h := md5.Sum([]byte("conformance raw")), sha1.Sum([]byte("conformance raw"))
	raw := append(m[:], h[:]...)
	if sig, ok := s.sign(t, &offload.SignRequest{Key: kp.key, Digest: raw, Opts: crypto.Hash(0)}); ok {
		if err := rsa.VerifyPKCS1v15(pub, 0, raw, sig); err != nil {
			t.Errorf("raw MD5+SHA-1 input: %v", err)
		}
	}
	f := s.Engine.Sign(context.Background(), &offload.SignRequest{Key: kp.key, Digest: make([]byte, pub.Size()-10), Opts: crypto.Hash(0)})
	expectErr(t, s, f, rsa.ErrMessageTooLong, "raw input of k-10 bytes")
}

func (s *suite) rsaPSS(t *testing.T, kp keyPair) {
	pub := kp.key.Public().(*rsa.PublicKey)
	emLen := (pub.N.BitLen() - 1 + 7) / 8
	tests := []struct {
		hash     crypto.Hash
		salt     int // as signed
		verify   int // as verified: exact lengths, so the mode is checked
		form     string
		optsHash crypto.Hash // PSSOptions.Hash; the signing hash when 0
	}{
		{crypto.SHA256, rsa.PSSSaltLengthEqualsHash, 32, "digest", 0},
		{crypto.SHA256, rsa.PSSSaltLengthAuto, emLen - 32 - 2, "digest", 0},
		{crypto.SHA256, 20, 20, "digest", 0},
		{crypto.SHA256, 64, 64, "digest", 0},
		{crypto.SHA256, rsa.PSSSaltLengthEqualsHash, 32, "message", 0},
		{crypto.SHA384, rsa.PSSSaltLengthEqualsHash, 48, "digest", 0},
		{crypto.SHA384, rsa.PSSSaltLengthAuto, emLen - 48 - 2, "message", 0},
		{crypto.SHA512, rsa.PSSSaltLengthEqualsHash, 64, "digest", 0},
		{crypto.SHA512, 0, emLen - 64 - 2, "message", 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/salt%d/%s", tc.hash, tc.salt, tc.form), func(t *testing.T) {
			msg := []byte("conformance PSS " + tc.hash.String())
			digest := hashOf(tc.hash, msg)
			opts := &rsa.PSSOptions{SaltLength: tc.salt, Hash: tc.hash}
			req := &offload.SignRequest{Key: kp.key, Digest: digest, Opts: opts}
			if tc.form == "message" {
				req = &offload.SignRequest{Key: kp.key, Message: msg, Opts: opts}
			}
			sig, ok := s.sign(t, req)
			if !ok {
				return
			}
			if err := rsa.VerifyPSS(pub, tc.hash, digest, sig, &rsa.PSSOptions{SaltLength: tc.verify}); err != nil {
				t.Errorf("salt %d: does not verify with salt length %d: %v", tc.salt, tc.verify, err)
			}
		})
	}
	// The longest salt the modulus takes signs; one byte more fails before
	// the device, as crypto/rsa fails.
	digest := hashOf(crypto.SHA256, []byte("conformance PSS salt"))
	longest := emLen - 32 - 2
	if sig, ok := s.sign(t, &offload.SignRequest{Key: kp.key, Digest: digest, Opts: &rsa.PSSOptions{SaltLength: longest, Hash: crypto.SHA256}}); ok {
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: longest}); err != nil {
			t.Errorf("salt %d: %v", longest, err)
		}
	}
	f := s.Engine.Sign(context.Background(), &offload.SignRequest{Key: kp.key, Digest: digest, Opts: &rsa.PSSOptions{SaltLength: longest + 1, Hash: crypto.SHA256}})
	expectErr(t, s, f, rsa.ErrMessageTooLong, fmt.Sprintf("salt %d on a %d-byte encoding", longest+1, emLen))
}

func (s *suite) ed25519Pure(t *testing.T) {
	kp := s.key(t, offload.KeyEd25519, 0)
	pub, ok := kp.key.Public().(ed25519.PublicKey)
	if !ok {
		t.Fatalf("public key is %T", kp.key.Public())
	}
	msg := []byte("conformance Ed25519")
	for _, req := range []*offload.SignRequest{
		{Key: kp.key, Message: msg},
		{Key: kp.key, Digest: msg, Opts: crypto.Hash(0)},
		{Key: kp.key, Message: msg, Opts: &ed25519.Options{}},
	} {
		sig, ok := s.sign(t, req)
		if !ok {
			continue
		}
		if !ed25519.Verify(pub, msg, sig) {
			t.Errorf("signature does not verify (opts %#v)", req.Opts)
		}
		if priv, ok := kp.priv.(ed25519.PrivateKey); ok && !bytes.Equal(sig, ed25519.Sign(priv, msg)) {
			t.Errorf("signature differs from the standard library's")
		}
	}
}

func (s *suite) ed25519ph(t *testing.T) {
	kp := s.key(t, offload.KeyEd25519, 0)
	pub := kp.key.Public().(ed25519.PublicKey)
	msg := []byte("conformance Ed25519ph")
	digest := hashOf(crypto.SHA512, msg)
	for _, c := range []string{"", "context"} {
		opts := &ed25519.Options{Hash: crypto.SHA512, Context: c}
		for _, req := range []*offload.SignRequest{
			{Key: kp.key, Digest: digest, Opts: opts},
			{Key: kp.key, Message: msg, Opts: opts},
		} {
			sig, ok := s.sign(t, req)
			if ok {
				if err := ed25519.VerifyWithOptions(pub, digest, sig, opts); err != nil {
					t.Errorf("context %q: %v", c, err)
				}
			}
		}
	}
}

func (s *suite) ed25519ctx(t *testing.T) {
	kp := s.key(t, offload.KeyEd25519, 0)
	pub := kp.key.Public().(ed25519.PublicKey)
	msg := []byte("conformance Ed25519ctx")
	opts := &ed25519.Options{Context: "conformance"}
	sig, ok := s.sign(t, &offload.SignRequest{Key: kp.key, Message: msg, Opts: opts})
	if !ok {
		return
	}
	if err := ed25519.VerifyWithOptions(pub, msg, sig, opts); err != nil {
		t.Error(err)
	}
	if ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Context: "other"}) == nil {
		t.Error("context ignored: verifies under another context")
	}
}

func (s *suite) ed448(t *testing.T) {
	kp := s.key(t, offload.KeyEd448, 0)
	pub, ok := kp.key.Public().(ed448.PublicKey)
	if !ok {
		t.Fatalf("public key is %T", kp.key.Public())
	}
	msg := []byte("conformance Ed448")
	tests := []struct {
		name   string
		opts   crypto.SignerOpts
		verify func(sig []byte) bool
	}{
		{"pure", nil, func(sig []byte) bool { return ed448.Verify(pub, msg, sig, "") }},
		{"context", ed448.SignerOptions{Context: "ctx"}, func(sig []byte) bool { return ed448.Verify(pub, msg, sig, "ctx") }},
		{"ph", ed448.SignerOptions{Scheme: ed448.ED448Ph}, func(sig []byte) bool { return ed448.VerifyPh(pub, msg, sig, "") }},
		{"ph context", ed448.SignerOptions{Scheme: ed448.ED448Ph, Context: "ctx"}, func(sig []byte) bool { return ed448.VerifyPh(pub, msg, sig, "ctx") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig, ok := s.sign(t, &offload.SignRequest{Key: kp.key, Message: msg, Opts: tc.opts})
			if ok && !tc.verify(sig) {
				t.Error("signature does not verify")
			}
		})
	}
}

func (s *suite) mldsa(t *testing.T, a offload.Algorithm) {
	kp := s.key(t, keyTypeOf(a), 0)
	var verify func(msg, ctx, sig []byte) bool
	switch pub := kp.key.Public().(type) {
	case *mldsa44.PublicKey:
		verify = func(msg, ctx, sig []byte) bool { return mldsa44.Verify(pub, msg, ctx, sig) }
	case *mldsa65.PublicKey:
		verify = func(msg, ctx, sig []byte) bool { return mldsa65.Verify(pub, msg, ctx, sig) }
	case *mldsa87.PublicKey:
		verify = func(msg, ctx, sig []byte) bool { return mldsa87.Verify(pub, msg, ctx, sig) }
	default:
		t.Fatalf("public key is %T", pub)
	}
	msg := []byte("conformance " + a.String())
	ctx := []byte("context")
	for _, tc := range []struct {
		name string
		opts crypto.SignerOpts
		ctx  []byte
	}{
		{"hedged", nil, nil},
		{"hedged context", &offload.MLDSAOptions{Context: ctx}, ctx},
		{"deterministic", &offload.MLDSAOptions{Deterministic: true}, nil},
		{"deterministic context", &offload.MLDSAOptions{Context: ctx, Deterministic: true}, ctx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, ok := s.sign(t, &offload.SignRequest{Key: kp.key, Message: msg, Opts: tc.opts})
			if !ok {
				return
			}
			if !verify(msg, tc.ctx, sig) {
				t.Fatal("signature does not verify")
			}
			if len(tc.ctx) > 0 && verify(msg, nil, sig) {
				t.Error("context ignored")
			}
			if o, _ := tc.opts.(*offload.MLDSAOptions); o != nil && o.Deterministic {
				again, ok := s.sign(t, &offload.SignRequest{Key: kp.key, Message: msg, Opts: tc.opts})
				if ok && !bytes.Equal(sig, again) {
					t.Error("deterministic signatures differ")
				}
				if want := circlDeterministic(kp.priv, msg, tc.ctx); want != nil && !bytes.Equal(sig, want) {
					t.Error("deterministic signature differs from circl's")
				}
			}
		})
	}
	// A context longer than 255 bytes is refused.
	long := make([]byte, 256)
	f := s.Engine.Sign(context.Background(), &offload.SignRequest{Key: kp.key, Message: msg, Opts: &offload.MLDSAOptions{Context: long}})
	if _, err := waitErr(t, s, f); err == nil && !s.injected(f.Err()) {
		t.Error("a 256-byte context was accepted")
	}
}

// circlDeterministic signs with circl when the private key is known.
func circlDeterministic(priv any, msg, ctx []byte) []byte {
	var sig []byte
	var err error
	switch k := priv.(type) {
	case *mldsa44.PrivateKey:
		sig = make([]byte, mldsa44.SignatureSize)
		err = mldsa44.SignTo(k, msg, ctx, false, sig)
	case *mldsa65.PrivateKey:
		sig = make([]byte, mldsa65.SignatureSize)
		err = mldsa65.SignTo(k, msg, ctx, false, sig)
	case *mldsa87.PrivateKey:
		sig = make([]byte, mldsa87.SignatureSize)
		err = mldsa87.SignTo(k, msg, ctx, false, sig)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return sig
}
