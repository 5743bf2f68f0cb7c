package hasher_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

func streamData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

func TestDigest(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 1280})
	for _, h := range hashes {
		for _, n := range []int{0, 1, 1279, 1280, 1281, 2560, 100000} {
			data := streamData(n)
			want := stdNew(h)
			want.Write(data)
			for name, r := range map[string]io.Reader{
				"reader":    bytes.NewReader(data),
				"one byte":  iotest.OneByteReader(bytes.NewReader(data)),
				"half":      iotest.HalfReader(bytes.NewReader(data)),
				"data+EOF":  iotest.DataErrReader(bytes.NewReader(data)),
				"multi EOF": io.MultiReader(bytes.NewReader(data[:n/2]), bytes.NewReader(data[n/2:])),
			} {
				got, err := testwait.Wait(t, hasher.Digest(context.Background(), eng, h, r), "Digest")
				if err != nil || !bytes.Equal(got, want.Sum(nil)) {
					t.Fatalf("%v, %d bytes, %s: Digest = %x, %v", h, n, name, got, err)
				}
			}
		}
	}
}

func TestDigestErrors(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 1280})
	ctx := context.Background()
	readErr := errors.New("disk on fire")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		eng  offload.Engine
		h    crypto.Hash
		r    io.Reader
		want error
	}{
		{"read error", ctx, eng, crypto.SHA256, io.MultiReader(bytes.NewReader(streamData(5000)), iotest.ErrReader(readErr)), readErr},
		{"nil reader", ctx, eng, crypto.SHA256, nil, offload.ErrInvalid},
		{"unsupported", ctx, eng, crypto.MD5, bytes.NewReader(nil), offload.ErrUnsupported},
		{"cancelled", cancelled, eng, crypto.SHA256, bytes.NewReader(streamData(5000)), context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testwait.Wait(t, hasher.Digest(tc.ctx, tc.eng, tc.h, tc.r), "Digest")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Digest = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDigestFault fails each request of a streamed digest in turn: the
// future fails with the device's error, and never yields a digest.
func TestDigestFault(t *testing.T) {
	data := streamData(10 * 1280)
	for k := uint64(1); k <= 11; k++ {
		eng := newSoft(t, soft.Options{MaxInline: 1280, Faults: []inject.Fault{{
			If:  func(r inject.Request) bool { return r.Seq == k },
			Err: errBoom,
		}}})
		got, err := testwait.Wait(t, hasher.Digest(context.Background(), eng, crypto.SHA256, bytes.NewReader(data)), "Digest with a fault")
		if !errors.Is(err, errBoom) || got != nil {
			t.Fatalf("request %d failed: Digest = %x, %v", k, got, err)
		}
	}
}

// The signer package's types sign streams without hasher importing it.
var (
	_ hasher.AsyncSigner = (*signer.Signer)(nil)
	_ hasher.AsyncSigner = (*signer.Decrypter)(nil)
)

func TestSignStream(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 4096, Latency: 50 * time.Microsecond})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	data := streamData(50000)
	d256, d384 := sha256.Sum256(data), sha512.Sum384(data)
	for _, tc := range []struct {
		name   string
		priv   crypto.Signer
		opts   crypto.SignerOpts
		verify func(sig []byte) bool
	}{
		{"ECDSA P-256 SHA-256", ec, crypto.SHA256, func(sig []byte) bool { return ecdsa.VerifyASN1(&ec.PublicKey, d256[:], sig) }},
		{"RSA-PSS SHA-384", rk, &rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: rsa.PSSSaltLengthEqualsHash}, func(sig []byte) bool {
			return rsa.VerifyPSS(&rk.PublicKey, crypto.SHA384, d384[:], sig, nil) == nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := eng.ImportKey(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			s, err := signer.New(key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := testwait.Wait(t, hasher.SignStream(context.Background(), s, bytes.NewReader(data), tc.opts), "SignStream")
			if err != nil || !tc.verify(sig) {
				t.Fatalf("SignStream = %x, %v", sig, err)
			}
		})
	}

	key, _ := eng.ImportKey(ec)
	s, _ := signer.New(key)
	for _, tc := range []struct {
		name string
		s    hasher.AsyncSigner
		opts crypto.SignerOpts
		r    io.Reader
		want error
	}{
		{"nil signer", nil, crypto.SHA256, bytes.NewReader(data), offload.ErrInvalid},
		{"nil *signer.Signer", (*signer.Signer)(nil), crypto.SHA256, bytes.NewReader(data), offload.ErrInvalid},
		{"zero signer.Signer", &signer.Signer{}, crypto.SHA256, bytes.NewReader(data), offload.ErrInvalid},
		{"no hash", s, crypto.Hash(0), bytes.NewReader(data), offload.ErrInvalid},
		{"nil opts", s, nil, bytes.NewReader(data), offload.ErrInvalid},
		{"unsupported hash", s, crypto.SHA3_256, bytes.NewReader(data), offload.ErrUnsupported},
		{"nil reader", s, crypto.SHA256, nil, offload.ErrInvalid},
		{"read error", s, crypto.SHA256, iotest.ErrReader(errBoom), errBoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testwait.Wait(t, hasher.SignStream(context.Background(), tc.s, tc.r, tc.opts), "SignStream")
			if !errors.Is(err, tc.want) {
				t.Fatalf("SignStream = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDigestOverlaps checks that Digest returns before the stream is
// consumed: the caller's goroutine is free while the engine works.
func TestDigestOverlaps(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 1280})
	pr, pw := io.Pipe()
	f := hasher.Digest(context.Background(), eng, crypto.SHA512, pr)
	if _, err := f.Poll(); !errors.Is(err, offload.ErrNotReady) {
		t.Fatalf("Poll before any input = %v, want ErrNotReady", err)
	}
	data := streamData(7000)
	go func() {
		pw.Write(data)
		pw.Close()
	}()
	got, err := testwait.Wait(t, f, "Digest of the piped stream")
	if want := sha512.Sum512(data); err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("Digest = %x, %v", got, err)
	}
}
