package soft

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

func TestCipher(t *testing.T) {
	e := newEngine(t, Options{})
	plain := make([]byte, 1000) // not whole blocks, for GCM and CTR
	rand.Read(plain)
	aad := []byte("additional data")

	for _, size := range []int{16, 24, 32} {
		raw := make([]byte, size)
		rand.Read(raw)
		ref := bytes.Clone(raw)
		key := mustImport(t, e, raw)
		rand.Read(raw) // the engine holds its own copy
		if key.Bits() != size*8 || key.Public() != nil {
			t.Fatalf("AES key bits %d, public %v", key.Bits(), key.Public())
		}
		blk, _ := aes.NewCipher(ref)
		gcm12, _ := cipher.NewGCM(blk)
		gcm8, _ := cipher.NewGCMWithNonceSize(blk, 8)
		iv := make([]byte, 16)
		rand.Read(iv)

		cbcIn := plain[:992]
		cbcCT := make([]byte, len(cbcIn))
		cipher.NewCBCEncrypter(blk, iv).CryptBlocks(cbcCT, cbcIn)
		ctrCT := make([]byte, len(plain))
		cipher.NewCTR(blk, iv).XORKeyStream(ctrCT, plain)

		tests := []struct {
			name   string
			mode   offload.CipherMode
			iv     []byte
			aad    []byte
			plain  []byte
			cipher []byte
		}{
			{"GCM-12", offload.ModeGCM, iv[:12], aad, plain, gcm12.Seal(nil, iv[:12], plain, aad)},
			{"GCM-12-no-aad", offload.ModeGCM, iv[:12], nil, plain, gcm12.Seal(nil, iv[:12], plain, nil)},
			{"GCM-12-empty", offload.ModeGCM, iv[:12], aad, []byte{}, gcm12.Seal(nil, iv[:12], nil, aad)},
			{"GCM-8", offload.ModeGCM, iv[:8], aad, plain, gcm8.Seal(nil, iv[:8], plain, aad)},
			{"CBC", offload.ModeCBC, iv, nil, cbcIn, cbcCT},
			{"CTR", offload.ModeCTR, iv, nil, plain, ctrCT},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("AES%d-%s", size*8, tt.name), func(t *testing.T) {
				for _, inline := range []bool{false, true} {
					call := offload.Call{Inline: inline}
					ct, err := wait(t, e.Cipher(context.Background(), &offload.CipherRequest{Call: call,
						Key: key, Mode: tt.mode, IV: tt.iv, AAD: tt.aad, Input: tt.plain}))
					if err != nil || !bytes.Equal(ct, tt.cipher) {
						t.Fatalf("encrypt: %x, %v; want %x", ct, err, tt.cipher)
					}
					pt, err := wait(t, e.Cipher(context.Background(), &offload.CipherRequest{Call: call,
						Key: key, Mode: tt.mode, Decrypt: true, IV: tt.iv, AAD: tt.aad, Input: tt.cipher}))
					if err != nil || !bytes.Equal(pt, tt.plain) {
						t.Fatalf("decrypt: %x, %v", pt, err)
					}
				}
			})
		}
	}
}

func TestGCMTamper(t *testing.T) {
	e := newEngine(t, Options{})
	key, err := e.GenerateKey(context.Background(), offload.KeyAES, 128)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 12)
	aad := []byte("aad")
	ct, err := wait(t, e.Cipher(context.Background(), &offload.CipherRequest{Key: key, Mode: offload.ModeGCM,
		IV: nonce, AAD: aad, Input: []byte("attack at dawn")}))
	if err != nil {
		t.Fatal(err)
	}
	// The error crypto/cipher reports for a failed authentication.
	blk, _ := aes.NewCipher(make([]byte, 16))
	g, _ := cipher.NewGCM(blk)
	_, stdErr := g.Open(nil, nonce, make([]byte, 16), nil)

	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	for _, tt := range []struct {
		name    string
		ct, aad []byte
		nonce   []byte
	}{
		{"ciphertext", flip(ct, 0), aad, nonce},
		{"tag", flip(ct, len(ct)-1), aad, nonce},
		{"aad", ct, flip(aad, 0), nonce},
		{"nonce", ct, aad, flip(nonce, 0)},
		{"short", ct[:15], aad, nonce},
		{"empty", nil, aad, nonce},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := wait(t, e.Cipher(context.Background(), &offload.CipherRequest{Key: key, Mode: offload.ModeGCM,
				Decrypt: true, IV: tt.nonce, AAD: tt.aad, Input: tt.ct}))
			if err == nil || pt != nil {
				t.Fatalf("tampered %s opened: %q, %v", tt.name, pt, err)
			}
			// An authentication failure, as crypto/cipher reports it, even
			// for a ciphertext too short to hold the tag.
			if !errors.Is(err, stdErr) || errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("err = %v, want crypto/cipher's %v in the chain and not ErrInvalid", err, stdErr)
			}
		})
	}
}

func TestRandom(t *testing.T) {
	e := newEngine(t, Options{MaxInline: 256})
	// Nothing asked, nothing done: an empty, non-nil answer without a
	// submission, whatever the context.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, ctx := range []context.Context{context.Background(), ended} {
		if b, err := e.Random(ctx, &offload.RandomRequest{}).Poll(); b == nil || len(b) != 0 || err != nil {
			t.Fatalf("N=0: %v, %v; want an empty slice and nil", b, err)
		}
	}
	if n := e.Stats().Op(offload.OpRandom).Submitted; n != 0 {
		t.Fatalf("N=0 was submitted %d times", n)
	}
	for _, n := range []int{-1, 257} {
		if _, err := e.Random(context.Background(), &offload.RandomRequest{N: n}).Poll(); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("N=%d: %v, want ErrInvalid", n, err)
		}
	}
	for _, n := range []int{1, 32, 256} {
		a, err := wait(t, e.Random(context.Background(), &offload.RandomRequest{N: n}))
		if err != nil || len(a) != n {
			t.Fatalf("N=%d: %d bytes, %v", n, len(a), err)
		}
		b, _ := wait(t, e.Random(context.Background(), &offload.RandomRequest{N: n, Call: offload.Call{Inline: true}}))
		if n >= 32 && bytes.Equal(a, b) {
			t.Fatalf("N=%d: two draws are equal", n)
		}
	}
}

// The running state travels beside the payload and does not count against
// the payload cap: at the smallest cap, a SHA-512 state (204 bytes) is
// larger than the cap and must still be accepted.
func TestHashStateNotPayload(t *testing.T) {
	eng, err := New(Options{MaxInline: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	data := bytes.Repeat([]byte("offcrypt"), 64) // 512 bytes: four SHA-512 blocks
	var state []byte
	for i := 0; i < len(data); i += 128 {
		r, err := eng.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA512, State: state, Data: data[i : i+128]}).Wait(ctx)
		if err != nil {
			t.Fatalf("block %d: %v", i/128, err)
		}
		state = r.State
	}
	r, err := eng.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA512, State: state, Final: true}).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha512.Sum512(data); !bytes.Equal(r.Sum, want[:]) {
		t.Fatalf("sum %x, want %x", r.Sum, want)
	}
}
