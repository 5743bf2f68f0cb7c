package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"

	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/offload"
)

// nilInput: a nil request and a nil context are bad input on every
// operation, failed futures wrapping offload.ErrInvalid, never a panic; so
// is a nil context given to a future's Wait, resolved or not.
func (s *suite) nilInput(t *testing.T) {
	e := s.Engine
	var nilCtx context.Context
	ctx := context.Background()
	// An operation the engine claims no algorithm of may be refused as
	// unsupported before the request is looked at.
	claims := func(op offload.Op) bool {
		return slices.ContainsFunc(s.info.Algorithms, func(a offload.Algorithm) bool { return a.Op() == op })
	}
	check := func(what string, f offload.Awaitable, op offload.Op) {
		t.Helper()
		select {
		case <-f.Done():
		default:
			t.Errorf("%s: the future is pending; bad input fails at once", what)
			return
		}
		err := f.Err()
		if !errors.Is(err, offload.ErrInvalid) && (claims(op) || !errors.Is(err, offload.ErrUnsupported)) {
			t.Errorf("%s: %v; want an error wrapping offload.ErrInvalid", what, err)
		}
	}
	check("Sign(nil request)", e.Sign(ctx, nil), offload.OpSign)
	check("Decrypt(nil request)", e.Decrypt(ctx, nil), offload.OpDecrypt)
	check("Cipher(nil request)", e.Cipher(ctx, nil), offload.OpCipher)
	if s.sessions == nil { // a HashSessioner's Hash is ErrUnsupported, request or not
		check("Hash(nil request)", e.Hash(ctx, nil), offload.OpHash)
		if s.info.Supports(offload.SHA256) {
			check("Hash(nil context)", e.Hash(nilCtx, &offload.HashRequest{Hash: crypto.SHA256, Data: make([]byte, 64)}), offload.OpHash)
		}
	}
	if s.info.Supports(offload.Random) {
		check("Random(nil request)", e.Random(ctx, nil), offload.OpRandom)
		check("Random(nil context)", e.Random(nilCtx, &offload.RandomRequest{N: 16}), offload.OpRandom)
	}
	if s.info.Supports(offload.AESGCM) {
		key, _ := s.aesKey(t)
		check("Cipher(nil context)", e.Cipher(nilCtx, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, IV: make([]byte, 12), Input: []byte("x")}), offload.OpCipher)
	}
	if s.info.Supports(offload.ECDSAP256) {
		k := s.key(t, offload.KeyECDSAP256, 0).key
		for _, call := range []offload.Call{{}, {Inline: true}} {
			check(fmt.Sprintf("Sign(nil context, %+v)", call), e.Sign(nilCtx, &offload.SignRequest{Call: call, Key: k, Digest: make([]byte, 32), Opts: crypto.SHA256}), offload.OpSign)
		}
	}
	if s.Generate != nil && s.info.Supports(offload.ECDSAP256) {
		if k, err := s.Generate(nilCtx, offload.KeyECDSAP256, 0); k != nil || !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("GenerateKey(nil context) = %v, %v; want an error wrapping offload.ErrInvalid", k, err)
		}
	}
	done := offload.Resolved([]byte("value"), nil)
	if v, err := done.Wait(nilCtx); v != nil || !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Wait(nil) on a resolved future = %q, %v; want an error wrapping offload.ErrInvalid", v, err)
	}
	if s.sessions != nil {
		if hs, err := s.sessions.HashSession(nilCtx, crypto.SHA256); hs != nil || !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("HashSession(nil context) = %v, %v; want an error wrapping offload.ErrInvalid", hs, err)
		}
	}
}

// importInvalid: a private key of the standard library's that crypto/ecdsa
// or crypto/rsa would panic on (D nil, D out of range, no primes) is refused
// by ImportKey with an error wrapping offload.ErrInvalid.
func (s *suite) importInvalid(t *testing.T) {
	if s.Import == nil {
		t.Skip("the engine imports no keys")
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk := s.tryRSA(t)
	for _, tc := range []struct {
		name string
		priv any
	}{
		{"ECDSA D nil", &ecdsa.PrivateKey{PublicKey: ec.PublicKey}},
		{"ECDSA D zero", &ecdsa.PrivateKey{PublicKey: ec.PublicKey, D: new(big.Int)}},
		{"ECDSA D = N", &ecdsa.PrivateKey{PublicKey: ec.PublicKey, D: elliptic.P256().Params().N}},
		{"ECDSA nil", (*ecdsa.PrivateKey)(nil)},
		{"RSA D nil", &rsa.PrivateKey{PublicKey: rk.PublicKey, Primes: rk.Primes}},
		{"RSA no primes", &rsa.PrivateKey{PublicKey: rk.PublicKey, D: rk.D}},
		{"RSA nil prime", &rsa.PrivateKey{PublicKey: rk.PublicKey, D: rk.D, Primes: []*big.Int{rk.Primes[0], nil}}},
	} {
		k, err := s.Import(tc.priv)
		if k != nil || !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("Import(%s) = %v, %v; want an error wrapping offload.ErrInvalid", tc.name, k, err)
		}
	}
}

// tryRSA returns an RSA key to take apart: the suite's own when it imported
// one, else a new 2048-bit key.
func (s *suite) tryRSA(t *testing.T) *rsa.PrivateKey {
	for id, kp := range s.keys {
		if k, ok := kp.priv.(*rsa.PrivateKey); ok && id.t == offload.KeyRSA {
			return k
		}
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gcmSizes: GCM seals and opens as crypto/cipher does at every size up to
// the engine's limit (Info.GCMLimit): nothing, one byte, around MaxInline
// (where a device engine starts streaming), and 16 MiB; a tampered message
// of each size fails as crypto/cipher's Open fails and releases nothing. A
// message one byte over a limit small enough to try fails with
// offload.ErrInvalid.
func (s *suite) gcmSizes(t *testing.T) {
	if !s.info.Supports(offload.AESGCM) {
		t.Skip("the engine claims no AES-GCM")
	}
	key, raw := s.aesKey(t)
	if raw == nil {
		t.Skip("no AES key whose value is known")
	}
	block, _ := aes.NewCipher(raw)
	std, _ := cipher.NewGCM(block)
	limit, cap := s.info.GCMLimit(), s.info.MaxInline
	nonce, aad := make([]byte, 12), []byte("additional data")
	rand.Read(nonce)
	sizes := []int{0, 1, cap - gcmauth.TagSize, cap - gcmauth.TagSize + 1, cap, cap + 1, 3*cap + 7, 16 << 20}
	for _, n := range sizes {
		if n+gcmauth.TagSize > limit {
			continue
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := make([]byte, n)
			rand.Read(pt)
			want := std.Seal(nil, nonce, pt, aad)
			ct, err, ok := s.cipher(t, &offload.CipherRequest{Call: offload.Call{Inline: true}, Key: key, Mode: offload.ModeGCM, IV: nonce, AAD: aad, Input: pt})
			if err != nil {
				t.Fatalf("seal: %v", err)
			}
			if ok && !bytes.Equal(ct, want) {
				t.Fatalf("sealed %d bytes differently from crypto/cipher", n)
			}
			got, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: true, IV: nonce, AAD: aad, Input: want})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if ok && !bytes.Equal(got, pt) {
				t.Fatalf("opened %d bytes differently from crypto/cipher", n)
			}
			for _, at := range []int{len(want) / 2, len(want) - 1} {
				bad := bytes.Clone(want)
				bad[at] ^= 0x80
				v, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: true, IV: nonce, AAD: aad, Input: bad})
				if ok && (v != nil || !errors.Is(err, gcmauth.ErrOpen)) {
					t.Fatalf("open of %d bytes tampered at %d = %d bytes, %v; want none and crypto/cipher's %q", len(bad), at, len(v), err, gcmauth.ErrOpen)
				}
			}
		})
	}
	// Additional data longer than the payload cap: crypto/cipher takes any
	// length, and so does every engine but a device that refuses it
	// (QuickAssist takes at most 240 bytes) with ErrUnsupported.
	bigAAD := make([]byte, cap+1)
	rand.Read(bigAAD)
	want := std.Seal(nil, nonce, []byte("m"), bigAAD)
	ct, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, IV: nonce, AAD: bigAAD, Input: []byte("m")})
	switch {
	case !ok || errors.Is(err, offload.ErrUnsupported):
	case err != nil || !bytes.Equal(ct, want):
		t.Errorf("GCM with %d bytes of AAD: %v; want crypto/cipher's result or ErrUnsupported", len(bigAAD), err)
	default:
		if pt, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: true, IV: nonce, AAD: bigAAD, Input: want}); ok && (err != nil || string(pt) != "m") {
			t.Errorf("GCM open with %d bytes of AAD = %q, %v", len(bigAAD), pt, err)
		}
	}
	if limit+1 <= 32<<20 {
		for _, decrypt := range []bool{false, true} {
			in := make([]byte, limit+1)
			if !decrypt {
				in = in[:limit-gcmauth.TagSize+1]
			}
			_, err, ok := s.cipher(t, &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: decrypt, IV: nonce, Input: in})
			if ok && !errors.Is(err, offload.ErrInvalid) {
				t.Errorf("GCM (decrypt %v) of %d bytes, one over the engine's limit: %v; want an error wrapping offload.ErrInvalid", decrypt, len(in), err)
			}
		}
	}
}
