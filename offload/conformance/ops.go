package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"testing"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

// unsupported checks that an algorithm the engine does not claim fails with
// ErrUnsupported before it reaches the device: the engine's counters show
// no submission.
func (s *suite) unsupported(t *testing.T, a offload.Algorithm) {
	kt := keyTypeOf(a)
	var key *offload.Key
	forged := false
	if kt != 0 {
		if kp, err := s.tryKey(t, kt, 0); err == nil {
			key = kp.key
		} else {
			// No key of this type can be had, which is to be expected: make
			// a handle the engine never issued, so the request still has a
			// key. The engine may then refuse the key instead.
			key = offload.NewKey(s.base(), kt, defaultBits(kt), nil, nil)
			forged = true
		}
	}
	ctx := context.Background()
	before := s.Engine.Stats().Op(a.Op()).Submitted
	var f offload.Awaitable
	switch a.Op() {
	case offload.OpSign:
		req := &offload.SignRequest{Key: key, Message: []byte("unsupported")}
		switch a {
		case offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521, offload.RSAPKCS1v15:
			req.Opts = crypto.SHA256
		case offload.RSAPSS:
			req.Opts = &rsa.PSSOptions{Hash: crypto.SHA256}
		case offload.Ed25519ph:
			req.Opts = &ed25519.Options{Hash: crypto.SHA512}
		case offload.Ed25519ctx:
			req.Opts = &ed25519.Options{Context: "c"}
		}
		f = s.Engine.Sign(ctx, req)
	case offload.OpDecrypt:
		ct := make([]byte, 256)
		ct[1] = 1
		req := &offload.DecryptRequest{Key: key, Ciphertext: ct}
		if a == offload.RSAOAEP {
			req.Opts = &rsa.OAEPOptions{Hash: crypto.SHA256}
		}
		f = s.Engine.Decrypt(ctx, req)
	case offload.OpHash:
		h := map[offload.Algorithm]crypto.Hash{offload.SHA224: crypto.SHA224, offload.SHA256: crypto.SHA256, offload.SHA384: crypto.SHA384, offload.SHA512: crypto.SHA512}[a]
		f = s.Engine.Hash(ctx, &offload.HashRequest{Hash: h, Data: []byte("abc"), Final: true})
		if s.sessions != nil {
			if hs, err := s.sessions.HashSession(ctx, h); !errors.Is(err, offload.ErrUnsupported) {
				if hs != nil {
					hs.Close()
				}
				t.Errorf("HashSession(%v), not claimed, gave %v; want ErrUnsupported", h, err)
			}
		}
	case offload.OpCipher:
		mode := map[offload.Algorithm]offload.CipherMode{offload.AESGCM: offload.ModeGCM, offload.AESCBC: offload.ModeCBC, offload.AESCTR: offload.ModeCTR}[a]
		iv := make([]byte, 16)
		if mode == offload.ModeGCM {
			iv = iv[:12]
		}
		f = s.Engine.Cipher(ctx, &offload.CipherRequest{Key: key, Mode: mode, IV: iv, Input: make([]byte, 16)})
	case offload.OpRandom:
		f = s.Engine.Random(ctx, &offload.RandomRequest{N: 16})
	}
	testwait.Done(t, f, fmt.Sprintf("%v, not claimed", a))
	err := f.Err()
	switch {
	case s.injected(err):
	case errors.Is(err, offload.ErrUnsupported):
	case forged && (errors.Is(err, offload.ErrInvalid) || errors.Is(err, offload.ErrForeignKey)):
		t.Logf("refused the made-up %v key instead: %v", kt, err)
	default:
		t.Errorf("%v is not claimed, yet the request gave %v; want ErrUnsupported", a, err)
	}
	if after := s.Engine.Stats().Op(a.Op()).Submitted; after != before {
		t.Errorf("an unsupported %v request reached the device (%d submitted)", a, after-before)
	}
}

func (s *suite) decrypt(t *testing.T, key *offload.Key, ct []byte, opts crypto.DecrypterOpts) ([]byte, error, bool) {
	t.Helper()
	f := s.Engine.Decrypt(context.Background(), &offload.DecryptRequest{Key: key, Ciphertext: ct, Opts: opts})
	v, err := waitErr(t, s, f)
	return v, err, !s.injected(f.Err())
}

func (s *suite) oaep(t *testing.T) {
	kp := s.key(t, offload.KeyRSA, 0)
	pub := kp.key.Public().(*rsa.PublicKey)
	msg := []byte("conformance OAEP")
	tests := []struct {
		name string
		opts rsa.OAEPOptions
	}{
		{"sha256", rsa.OAEPOptions{Hash: crypto.SHA256}},
		{"sha256 label", rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}},
		{"sha1", rsa.OAEPOptions{Hash: crypto.SHA1}},
		{"sha512", rsa.OAEPOptions{Hash: crypto.SHA512, Label: []byte("l")}},
		{"sha256 mgf sha1", rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA1}},
		{"sha384 mgf sha256 label", rsa.OAEPOptions{Hash: crypto.SHA384, MGFHash: crypto.SHA256, Label: []byte("label")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, msg, &tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			opts := tc.opts
			got, err, ok := s.decrypt(t, kp.key, ct, &opts)
			if ok && (err != nil || !bytes.Equal(got, msg)) {
				t.Errorf("decrypt: %q, %v", got, err)
			}
			// The wrong label, or the wrong MGF hash, fails.
			wrong := tc.opts
			wrong.Label = []byte("wrong")
			if _, err, ok := s.decrypt(t, kp.key, ct, &wrong); ok && !errors.Is(err, rsa.ErrDecryption) {
				t.Errorf("wrong label: %v; want rsa.ErrDecryption", err)
			}
			if tc.opts.MGFHash != 0 {
				wrong := tc.opts
				wrong.MGFHash = 0
				if _, err, ok := s.decrypt(t, kp.key, ct, &wrong); ok && !errors.Is(err, rsa.ErrDecryption) {
					t.Errorf("wrong MGF hash: %v; want rsa.ErrDecryption", err)
				}
			}
			high := bytes.Repeat([]byte{0xff}, pub.Size())
			if got, err, ok := s.decrypt(t, kp.key, high, &opts); ok && (!errors.Is(err, rsa.ErrDecryption) || got != nil) {
				t.Errorf("ciphertext 0xff…: %x, %v; want rsa.ErrDecryption", got, err)
			}
		})
	}
}

func (s *suite) pkcs1Decrypt(t *testing.T) {
	kp := s.key(t, offload.KeyRSA, 0)
	pub := kp.key.Public().(*rsa.PublicKey)
	msg := []byte("0123456789abcdef") // 16 bytes: a session key
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}} {
		got, err, ok := s.decrypt(t, kp.key, ct, opts)
		if ok && (err != nil || !bytes.Equal(got, msg)) {
			t.Errorf("opts %#v: %q, %v", opts, got, err)
		}
	}
	// A ciphertext that is not PKCS #1 v1.5 fails, unless SessionKeyLen asks
	// for random bytes of that length instead of an error.
	bad := make([]byte, pub.Size())
	rand.Read(bad)
	bad[0] = 0
	if _, err, ok := s.decrypt(t, kp.key, bad, nil); ok && !errors.Is(err, rsa.ErrDecryption) {
		t.Errorf("garbage: %v; want rsa.ErrDecryption", err)
	}
	got, err, ok := s.decrypt(t, kp.key, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
	if ok && (err != nil || len(got) != 16) {
		t.Errorf("SessionKeyLen on garbage: %d bytes, %v; want 16 random bytes", len(got), err)
	}
	// The random key is fresh each time, not a constant an attacker could
	// tell from a real key.
	if again, err, ok2 := s.decrypt(t, kp.key, bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}); ok && ok2 && (err != nil || bytes.Equal(again, got)) {
		t.Errorf("SessionKeyLen on garbage twice: %x then %x, %v", got, again, err)
	}
	// A ciphertext not below the modulus fails before any unpadding, as in
	// crypto/rsa, with or without SessionKeyLen.
	high := bytes.Repeat([]byte{0xff}, pub.Size())
	for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}} {
		if got, err, ok := s.decrypt(t, kp.key, high, opts); ok && (!errors.Is(err, rsa.ErrDecryption) || got != nil) {
			t.Errorf("opts %#v, ciphertext 0xff…: %x, %v; want rsa.ErrDecryption", opts, got, err)
		}
	}
	short, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg[:10])
	if err != nil {
		t.Fatal(err)
	}
	got, err, ok = s.decrypt(t, kp.key, short, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16})
	if ok && (err != nil || len(got) != 16) {
		t.Errorf("SessionKeyLen on a 10-byte message: %d bytes, %v; want 16 random bytes", len(got), err)
	}
}

func (s *suite) hash(t *testing.T, a offload.Algorithm) {
	h := map[offload.Algorithm]crypto.Hash{offload.SHA224: crypto.SHA224, offload.SHA256: crypto.SHA256, offload.SHA384: crypto.SHA384, offload.SHA512: crypto.SHA512}[a]
	block := h.New().BlockSize()
	data := make([]byte, 3*block+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	do := func(req *offload.HashRequest) (offload.HashResult, bool) {
		return wait(t, s, s.Engine.Hash(context.Background(), req))
	}
	// Chained: one block, two blocks, then the tail, the state carried.
	r1, ok := do(&offload.HashRequest{Hash: h, Data: data[:block]})
	if !ok {
		return
	}
	r2, ok := do(&offload.HashRequest{Hash: h, State: r1.State, Data: data[block : 3*block]})
	if !ok {
		return
	}
	r3, ok := do(&offload.HashRequest{Hash: h, State: r2.State, Data: data[3*block:], Final: true})
	if ok && !bytes.Equal(r3.Sum, hashOf(h, data)) {
		t.Errorf("chained digest %x, want %x", r3.Sum, hashOf(h, data))
	}
	// The same state can be resumed twice: the engine keeps nothing.
	r4, ok := do(&offload.HashRequest{Hash: h, State: r1.State, Data: data[block:], Final: true})
	if ok && !bytes.Equal(r4.Sum, hashOf(h, data)) {
		t.Error("resuming a state a second time gave another digest")
	}
	// One shot, and the empty message.
	if r, ok := do(&offload.HashRequest{Hash: h, Data: data, Final: true}); ok && !bytes.Equal(r.Sum, hashOf(h, data)) {
		t.Error("one-shot digest wrong")
	}
	if r, ok := do(&offload.HashRequest{Hash: h, Final: true}); ok && !bytes.Equal(r.Sum, hashOf(h, nil)) {
		t.Error("empty digest wrong")
	}
}

// aesKey returns an AES key and its bytes, or nil bytes when the Setup can
// only generate or look up keys (then only round trips are checked).
func (s *suite) aesKey(t *testing.T) (*offload.Key, []byte) {
	if s.Import != nil {
		raw := newPrivate(t, offload.KeyAES, 256).([]byte)
		if k, err := s.Import(raw); err == nil {
			return k, raw
		}
	}
	return s.key(t, offload.KeyAES, 256).key, nil
}

func (s *suite) cipher(t *testing.T, req *offload.CipherRequest) ([]byte, error, bool) {
	t.Helper()
	f := s.Engine.Cipher(context.Background(), req)
	v, err := waitErr(t, s, f)
	return v, err, !s.injected(f.Err())
}

func (s *suite) gcm(t *testing.T) {
	key, raw := s.aesKey(t)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	pt := []byte("conformance AES-GCM, not a whole number of blocks")
	aad := []byte("header")
	ct, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, IV: nonce, AAD: aad, Input: pt})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return
	}
	if raw != nil {
		block, _ := aes.NewCipher(raw)
		g, _ := cipher.NewGCM(block)
		if want := g.Seal(nil, nonce, pt, aad); !bytes.Equal(ct, want) {
			t.Errorf("GCM ciphertext differs from crypto/cipher's")
		}
	}
	got, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: true, IV: nonce, AAD: aad, Input: ct})
	if ok && (err != nil || !bytes.Equal(got, pt)) {
		t.Errorf("GCM open: %q, %v", got, err)
	}
	for name, mutate := range map[string]func(c, a []byte){
		"ciphertext": func(c, a []byte) { c[0] ^= 1 },
		"tag":        func(c, a []byte) { c[len(c)-1] ^= 0x80 },
		"aad":        func(c, a []byte) { a[0] ^= 1 },
	} {
		c, a := bytes.Clone(ct), bytes.Clone(aad)
		mutate(c, a)
		if got, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: true, IV: nonce, AAD: a, Input: c}); ok && err == nil {
			t.Errorf("GCM opened with a tampered %s: %q", name, got)
		}
	}
}

func (s *suite) cbc(t *testing.T) {
	key, raw := s.aesKey(t)
	iv := make([]byte, 16)
	rand.Read(iv)
	pt := bytes.Repeat([]byte("0123456789abcdef"), 5)
	ct, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeCBC, IV: iv, Input: pt})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return
	}
	if raw != nil {
		block, _ := aes.NewCipher(raw)
		want := make([]byte, len(pt))
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(want, pt)
		if !bytes.Equal(ct, want) {
			t.Error("CBC ciphertext differs from crypto/cipher's")
		}
	}
	got, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeCBC, Decrypt: true, IV: iv, Input: ct})
	if ok && (err != nil || !bytes.Equal(got, pt)) {
		t.Errorf("CBC decrypt: %q, %v", got, err)
	}
	if _, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeCBC, IV: iv, Input: pt[:17]}); ok && !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("CBC on a partial block: %v, want ErrInvalid", err)
	}
}

func (s *suite) ctr(t *testing.T) {
	key, raw := s.aesKey(t)
	iv := make([]byte, 16)
	rand.Read(iv)
	iv[15] = 0xff // the counter carries into the next byte
	pt := []byte("conformance AES-CTR, any length at all")
	ct, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeCTR, IV: iv, Input: pt})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return
	}
	if raw != nil {
		block, _ := aes.NewCipher(raw)
		want := make([]byte, len(pt))
		cipher.NewCTR(block, iv).XORKeyStream(want, pt)
		if !bytes.Equal(ct, want) {
			t.Error("CTR ciphertext differs from crypto/cipher's")
		}
	}
	got, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeCTR, Decrypt: true, IV: iv, Input: ct})
	if ok && (err != nil || !bytes.Equal(got, pt)) {
		t.Errorf("CTR decrypt: %q, %v", got, err)
	}
}

func (s *suite) random(t *testing.T) {
	n := s.info.MaxInline
	if n <= 0 {
		t.Fatalf("Info.MaxInline is %d", n)
	}
	for _, size := range []int{1, 32, n} {
		b, ok := wait(t, s, s.Engine.Random(context.Background(), &offload.RandomRequest{N: size}))
		if !ok {
			continue
		}
		if len(b) != size {
			t.Errorf("asked for %d bytes, got %d", size, len(b))
		}
		if size >= 32 && bytes.Equal(b, make([]byte, size)) {
			t.Errorf("%d random bytes are all zero", size)
		}
	}
	expectErr(t, s, s.Engine.Random(context.Background(), &offload.RandomRequest{N: n + 1}), offload.ErrInvalid, "Random beyond MaxInline")
}
