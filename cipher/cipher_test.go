package cipher_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

var errBoom = errors.New("injected device failure")

func newSoft(t testing.TB, o soft.Options) *soft.Engine {
	t.Helper()
	e, err := soft.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// aesKey imports raw into eng and returns the engine key and the standard
// library's block cipher for the same key.
func aesKey(t testing.TB, eng *soft.Engine, raw []byte) (*offload.Key, cipher.Block) {
	t.Helper()
	k, err := eng.ImportKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := aes.NewCipher(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k, b
}

func random(r *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// failAt returns soft options whose kth request fails.
func failAt(k uint64, o soft.Options) soft.Options {
	o.Faults = []inject.Fault{{If: func(r inject.Request) bool { return r.Seq == k }, Err: errBoom}}
	return o
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		v := recover()
		var msg string
		switch v := v.(type) {
		case string:
			msg = v
		case error:
			msg = v.Error()
		}
		if v == nil || !strings.Contains(msg, want) {
			t.Fatalf("panic %v, want one containing %q", v, want)
		}
	}()
	f()
}

func TestConstructors(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	aesK, _ := aesKey(t, eng, make([]byte, 16))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecK, err := eng.ImportKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	noAES := &infoHook{Engine: eng}
	foreign := offload.NewKey(noAES, offload.KeyAES, 128, nil, nil)
	iv := make([]byte, 16)
	ctors := map[string]func(*offload.Key, []byte) error{
		"GCM": func(k *offload.Key, _ []byte) error { _, err := ocipher.NewGCM(k); return err },
		"CBC": func(k *offload.Key, iv []byte) error { _, err := ocipher.NewCBCEncrypter(k, iv); return err },
		"CBC decrypt": func(k *offload.Key, iv []byte) error {
			_, err := ocipher.NewCBCDecrypter(k, iv)
			return err
		},
		"CTR": func(k *offload.Key, iv []byte) error { _, err := ocipher.NewCTR(k, iv); return err },
	}
	for name, ctor := range ctors {
		for _, tc := range []struct {
			name string
			key  *offload.Key
			iv   []byte
			want error
		}{
			{"ok", aesK, iv, nil},
			{"nil key", nil, iv, offload.ErrInvalid},
			{"ECDSA key", ecK, iv, offload.ErrInvalid},
			{"engine without AES", foreign, iv, offload.ErrUnsupported},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				if err := ctor(tc.key, tc.iv); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		}
	}
	for _, n := range []int{0, 15, 17} {
		if _, err := ocipher.NewCBCEncrypter(aesK, make([]byte, n)); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("CBC IV of %d bytes: %v", n, err)
		}
		if _, err := ocipher.NewCTR(aesK, make([]byte, n)); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("CTR IV of %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, -1} {
		if _, err := ocipher.NewGCMWithNonceSize(aesK, n); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("GCM nonce size %d: %v", n, err)
		}
	}
}

// infoHook claims no cipher algorithms.
type infoHook struct{ offload.Engine }

func (h *infoHook) Info() offload.Info {
	i := h.Engine.Info()
	i.Algorithms = []offload.Algorithm{offload.SHA256}
	return i
}

func TestGCMMatchesStandardLibrary(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 4096})
	r := mrand.New(mrand.NewPCG(1, 1))
	for _, keyLen := range []int{16, 24, 32} {
		for _, nonceLen := range []int{12, 8, 16, 1} {
			t.Run(fmt.Sprintf("AES-%d/nonce%d", keyLen*8, nonceLen), func(t *testing.T) {
				k, b := aesKey(t, eng, random(r, keyLen))
				a, err := ocipher.NewGCMWithNonceSize(k, nonceLen)
				if err != nil {
					t.Fatal(err)
				}
				std, _ := cipher.NewGCMWithNonceSize(b, nonceLen)
				if a.NonceSize() != std.NonceSize() || a.Overhead() != std.Overhead() {
					t.Fatal("NonceSize or Overhead differs")
				}
				for _, n := range []int{0, 1, 15, 16, 17, 1000, 4096 - 16} {
					nonce, pt, aad := random(r, nonceLen), random(r, n), random(r, r.IntN(40))
					want := std.Seal([]byte("prefix"), nonce, pt, aad)
					if got := a.Seal([]byte("prefix"), nonce, pt, aad); !bytes.Equal(got, want) {
						t.Fatalf("%d bytes: Seal differs", n)
					}
					// In place, as crypto/cipher allows.
					buf := append(make([]byte, 0, n+16), pt...)
					sealed := a.Seal(buf[:0], nonce, buf, aad)
					if !bytes.Equal(sealed, want[6:]) {
						t.Fatalf("%d bytes: in-place Seal differs", n)
					}
					opened, err := a.Open(sealed[:0], nonce, sealed, aad)
					if err != nil || !bytes.Equal(opened, pt) {
						t.Fatalf("%d bytes: in-place Open = %v", n, err)
					}
				}
			})
		}
	}
}

func TestGCMBadInput(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 1024})
	k, _ := aesKey(t, eng, make([]byte, 16))
	a, _ := ocipher.NewGCM(k)
	g := a
	ctx := context.Background()
	nonce, aad, pt := make([]byte, 12), []byte("header"), []byte("attack at dawn")
	sealed := a.Seal(nil, nonce, pt, aad)

	t.Run("wrong nonce size panics like crypto/cipher", func(t *testing.T) {
		for _, n := range []int{0, 11, 13} {
			mustPanic(t, "crypto/cipher: incorrect nonce length given to GCM", func() { a.Seal(nil, make([]byte, n), pt, aad) })
			mustPanic(t, "crypto/cipher: incorrect nonce length given to GCM", func() { a.Open(nil, make([]byte, n), sealed, aad) })
			if _, err := g.SealContext(ctx, nil, make([]byte, n), pt, aad); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("SealContext: %v", err)
			}
			if _, err := g.OpenContext(ctx, nil, make([]byte, n), sealed, aad); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("OpenContext: %v", err)
			}
			if _, err := testwait.Wait(t, g.SealAsync(ctx, nil, make([]byte, n), pt, aad), "SealAsync"); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("SealAsync: %v", err)
			}
			if _, err := testwait.Wait(t, g.OpenAsync(ctx, nil, make([]byte, n), sealed, aad), "OpenAsync"); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("OpenAsync: %v", err)
			}
		}
	})
	t.Run("ciphertext shorter than the tag", func(t *testing.T) {
		for n := range 16 {
			if _, err := a.Open(nil, nonce, sealed[:n], aad); err != ocipher.ErrOpen {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if _, err := testwait.Wait(t, g.OpenAsync(ctx, nil, nonce, sealed[:n], aad), "OpenAsync"); err != ocipher.ErrOpen {
				t.Fatalf("%d bytes, async: %v", n, err)
			}
		}
	})
	t.Run("tampering", func(t *testing.T) {
		flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
		for _, tc := range []struct {
			name      string
			n, sealed []byte
			aad       []byte
		}{
			{"tag", nonce, flip(sealed, len(sealed)-1), aad},
			{"ciphertext", nonce, flip(sealed, 0), aad},
			{"aad", nonce, sealed, flip(aad, 2)},
			{"no aad", nonce, sealed, nil},
			{"nonce", flip(nonce, 5), sealed, aad},
			{"truncated", nonce, sealed[:len(sealed)-1], aad},
		} {
			dst := []byte("keep")
			got, err := a.Open(dst, tc.n, tc.sealed, tc.aad)
			if err != ocipher.ErrOpen || got != nil || string(dst) != "keep" {
				t.Fatalf("%s: Open = %q, %v", tc.name, got, err)
			}
			if err.Error() != "cipher: message authentication failed" {
				t.Fatalf("message %q", err)
			}
			if _, err := testwait.Wait(t, g.OpenAsync(ctx, nil, tc.n, tc.sealed, tc.aad), "OpenAsync"); !errors.Is(err, ocipher.ErrOpen) {
				t.Fatalf("%s: OpenAsync = %v", tc.name, err)
			}
		}
	})
	t.Run("nil context", func(t *testing.T) {
		var nilCtx context.Context
		if _, err := g.SealContext(nilCtx, nil, nonce, pt, aad); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("SealContext = %v", err)
		}
		if _, err := g.OpenContext(nilCtx, nil, nonce, sealed, aad); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("OpenContext = %v", err)
		}
		if _, err := testwait.Wait(t, g.SealAsync(nilCtx, nil, nonce, pt, aad), "SealAsync"); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("SealAsync = %v", err)
		}
		if _, err := testwait.Wait(t, g.OpenAsync(nilCtx, nil, nonce, sealed, aad), "OpenAsync"); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("OpenAsync = %v", err)
		}
	})
	t.Run("no cap on an in-process engine", func(t *testing.T) {
		if g.MaxPlaintext() < 1<<30 {
			t.Fatalf("MaxPlaintext = %d on soft, whose only GCM limit is crypto/cipher's", g.MaxPlaintext())
		}
	})
}

// TestGCMOverDeviceLimit: on an engine that takes a GCM message only whole
// in one bounded request (qat's model), a message past MaxPlaintext is
// refused as NewGCM documents: Seal panics, the other forms return an error
// wrapping offload.ErrUnsupported; the longest message seals and opens.
func TestGCMOverDeviceLimit(t *testing.T) {
	eng, err := qat.Open(context.Background(), qat.Config{MaxInline: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	k, err := eng.ImportKey(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	g, err := ocipher.NewGCM(k)
	if err != nil {
		t.Fatal(err)
	}
	ctx, nonce := context.Background(), make([]byte, 12)
	if g.MaxPlaintext() != 1024-16 {
		t.Fatalf("MaxPlaintext = %d, want %d", g.MaxPlaintext(), 1024-16)
	}
	big := make([]byte, g.MaxPlaintext()+1)
	mustPanic(t, "cannot be split", func() { g.Seal(nil, nonce, big, nil) })
	if _, err := g.SealContext(ctx, nil, nonce, big, nil); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("SealContext = %v", err)
	}
	if _, err := testwait.Wait(t, g.SealAsync(ctx, nil, nonce, big, nil), "SealAsync"); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("SealAsync = %v", err)
	}
	if _, err := g.Open(nil, nonce, make([]byte, 1025), nil); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("Open = %v", err)
	}
	s := g.Seal(nil, nonce, big[1:], nil)
	if _, err := g.Open(nil, nonce, s, nil); err != nil {
		t.Fatal(err)
	}
}

func TestGCMDeviceFailure(t *testing.T) {
	eng := newSoft(t, soft.Options{Faults: []inject.Fault{{Err: errBoom}}})
	k, _ := aesKey(t, eng, make([]byte, 32))
	a, _ := ocipher.NewGCM(k)
	g := a
	ctx := context.Background()
	nonce := make([]byte, 12)
	mustPanic(t, errBoom.Error(), func() { a.Seal(nil, nonce, []byte("x"), nil) })
	if _, err := g.SealContext(ctx, nil, nonce, []byte("x"), nil); !errors.Is(err, errBoom) {
		t.Fatalf("SealContext = %v", err)
	}
	if _, err := testwait.Wait(t, g.SealAsync(ctx, nil, nonce, []byte("x"), nil), "SealAsync"); !errors.Is(err, errBoom) {
		t.Fatalf("SealAsync = %v", err)
	}
	// A device failure is not an authentication failure.
	if _, err := a.Open(nil, nonce, make([]byte, 32), nil); !errors.Is(err, errBoom) || errors.Is(err, ocipher.ErrOpen) {
		t.Fatalf("Open = %v", err)
	}

	eng.Close()
	if _, err := g.SealContext(ctx, nil, nonce, []byte("x"), nil); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("SealContext on a closed engine = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.OpenContext(cancelled, nil, nonce, make([]byte, 32), nil); err == nil || errors.Is(err, ocipher.ErrOpen) {
		t.Fatalf("OpenContext with a cancelled context = %v", err)
	}
}

func TestGCMAsync(t *testing.T) {
	eng := newSoft(t, soft.Options{Workers: 2})
	k, b := aesKey(t, eng, make([]byte, 16))
	a, _ := ocipher.NewGCM(k)
	g := a
	std, _ := cipher.NewGCM(b)
	ctx := context.Background()
	q := offload.NewQueue()
	want := map[int][]byte{}
	for i := range 50 {
		nonce := make([]byte, 12)
		nonce[0] = byte(i)
		pt := bytes.Repeat([]byte{byte(i)}, i*10)
		want[i] = std.Seal([]byte{byte(i)}, nonce, pt, nil)
		q.Add(g.SealAsync(ctx, []byte{byte(i)}, nonce, pt, nil), i)
	}
	done := make([]offload.Completion, 8)
	for q.Len() > 0 {
		n, err := q.Collect(ctx, done)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range done[:n] {
			got, err := offload.Result[[]byte](c)
			i := c.Tag.(int)
			if err != nil || !bytes.Equal(got, want[i]) {
				t.Fatalf("SealAsync %d = %x, %v", i, got, err)
			}
			nonce := make([]byte, 12)
			nonce[0] = byte(i)
			pt, err := testwait.Wait(t, g.OpenAsync(ctx, []byte("p"), nonce, got[1:], nil), "OpenAsync")
			if err != nil || !bytes.Equal(pt[1:], bytes.Repeat([]byte{byte(i)}, i*10)) || pt[0] != 'p' {
				t.Fatalf("OpenAsync %d = %v", i, err)
			}
		}
	}
}

// TestCBCMatchesStandardLibrary encrypts and decrypts in calls of random
// sizes, each cut into several requests, against crypto/cipher.
func TestCBCMatchesStandardLibrary(t *testing.T) {
	r := mrand.New(mrand.NewPCG(2, 2))
	for _, inline := range []int{128, 200, 0} {
		eng := newSoft(t, soft.Options{MaxInline: inline})
		for _, keyLen := range []int{16, 24, 32} {
			t.Run(fmt.Sprintf("inline%d/AES-%d", inline, keyLen*8), func(t *testing.T) {
				k, b := aesKey(t, eng, random(r, keyLen))
				iv := random(r, 16)
				data := random(r, 16*(100+r.IntN(400)))
				want := make([]byte, len(data))
				cipher.NewCBCEncrypter(b, iv).CryptBlocks(want, data)

				enc, _ := ocipher.NewCBCEncrypter(k, iv)
				dec, _ := ocipher.NewCBCDecrypter(k, iv)
				if enc.BlockSize() != 16 {
					t.Fatal("BlockSize")
				}
				got := make([]byte, len(data))
				back := bytes.Clone(want)
				for off := 0; off < len(data); {
					n := min(16*r.IntN(40), len(data)-off)
					enc.CryptBlocks(got[off:off+n], data[off:off+n])
					dec.CryptBlocks(back[off:off+n], back[off:off+n]) // in place
					off += n
				}
				if !bytes.Equal(got, want) {
					t.Fatal("CBC encryption differs")
				}
				if !bytes.Equal(back, data) {
					t.Fatal("CBC decryption differs")
				}
			})
		}
	}
}

func TestCBCBadInput(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	k, _ := aesKey(t, eng, make([]byte, 16))
	enc, _ := ocipher.NewCBCEncrypter(k, make([]byte, 16))
	c := enc
	ctx := context.Background()
	buf := make([]byte, 64)
	for _, tc := range []struct {
		name      string
		dst, src  []byte
		wantPanic string
	}{
		{"not whole blocks", buf, buf[:17], "crypto/cipher: input not full blocks"},
		{"one byte", buf, buf[:1], "crypto/cipher: input not full blocks"},
		{"short output", buf[:16], buf[32:64], "crypto/cipher: output smaller than input"},
		{"overlap", buf[16:], buf[:32], "crypto/cipher: invalid buffer overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustPanic(t, tc.wantPanic, func() { enc.CryptBlocks(tc.dst, tc.src) })
			if err := c.CryptBlocksContext(ctx, tc.dst, tc.src); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("CryptBlocksContext = %v", err)
			}
		})
	}
	// Zero-length input is a no-op.
	enc.CryptBlocks(nil, nil)
	mustPanic(t, "incorrect length IV", func() { c.SetIV(make([]byte, 3)) })
}

// TestCBCFaultAtEveryRequest fails each request of a multi-request call in
// turn: the call fails, the IV is unchanged, and a retry is right.
func TestCBCFaultAtEveryRequest(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 3))
	raw, iv := random(r, 16), random(r, 16)
	b, _ := aes.NewCipher(raw)
	data := random(r, 128*5+16)
	for _, decrypt := range []bool{false, true} {
		want := make([]byte, 2*len(data))
		var ref cipher.BlockMode = cipher.NewCBCEncrypter(b, iv)
		if decrypt {
			ref = cipher.NewCBCDecrypter(b, iv)
		}
		ref.CryptBlocks(want[:len(data)], data)
		ref.CryptBlocks(want[len(data):], data)
		for k := uint64(1); k <= 12; k++ {
			t.Run(fmt.Sprintf("decrypt=%v/request%d", decrypt, k), func(t *testing.T) {
				eng := newSoft(t, failAt(k, soft.Options{MaxInline: 128}))
				key, _ := aesKey(t, eng, raw)
				c, _ := ocipher.NewCBCEncrypter(key, iv)
				if decrypt {
					c, _ = ocipher.NewCBCDecrypter(key, iv)
				}
				got := make([]byte, 2*len(data))
				failures := 0
				for i := range 2 {
					dst := got[i*len(data) : (i+1)*len(data)]
					if err := c.CryptBlocksContext(context.Background(), dst, data); err != nil {
						failures++
						if !errors.Is(err, errBoom) {
							t.Fatal(err)
						}
						if err := c.CryptBlocksContext(context.Background(), dst, data); err != nil {
							t.Fatal(err)
						}
					}
				}
				if failures != 1 || !bytes.Equal(got, want) {
					t.Fatalf("%d failures; output right: %v", failures, bytes.Equal(got, want))
				}
			})
		}
	}
}

// TestCTRMatchesStandardLibrary XORs in calls of random sizes, most ending
// inside a block, against crypto/cipher, including counters that carry into
// the high half and wrap around.
func TestCTRMatchesStandardLibrary(t *testing.T) {
	r := mrand.New(mrand.NewPCG(4, 4))
	ivs := map[string][]byte{
		"random": random(r, 16),
		"carry":  {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0},
		"wrap":   bytes.Repeat([]byte{0xff}, 16),
	}
	for _, inline := range []int{128, 1000, 0} {
		eng := newSoft(t, soft.Options{MaxInline: inline})
		for name, iv := range ivs {
			t.Run(fmt.Sprintf("inline%d/%s", inline, name), func(t *testing.T) {
				k, b := aesKey(t, eng, random(r, 16))
				data := random(r, 5000+r.IntN(5000))
				want := make([]byte, len(data))
				cipher.NewCTR(b, iv).XORKeyStream(want, data)
				s, _ := ocipher.NewCTR(k, iv)
				got := bytes.Clone(data)
				for off := 0; off < len(data); {
					var n int
					switch r.IntN(3) {
					case 0:
						n = r.IntN(20)
					case 1:
						n = r.IntN(300)
					default:
						n = r.IntN(3000)
					}
					n = min(n, len(data)-off)
					s.XORKeyStream(got[off:off+n], got[off:off+n]) // in place
					off += n
				}
				if !bytes.Equal(got, want) {
					t.Fatal("CTR keystream differs")
				}
			})
		}
	}
}

func TestCTRBadInput(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	k, _ := aesKey(t, eng, make([]byte, 16))
	s, _ := ocipher.NewCTR(k, make([]byte, 16))
	c := s
	buf := make([]byte, 64)
	mustPanic(t, "crypto/cipher: output smaller than input", func() { s.XORKeyStream(buf[:3], buf[10:20]) })
	mustPanic(t, "crypto/cipher: invalid buffer overlap", func() { s.XORKeyStream(buf[1:], buf[:20]) })
	if err := c.XORKeyStreamContext(context.Background(), buf[:3], buf[10:20]); !errors.Is(err, offload.ErrInvalid) {
		t.Fatal(err)
	}
	if err := c.XORKeyStreamContext(context.Background(), buf[1:], buf[:20]); !errors.Is(err, offload.ErrInvalid) {
		t.Fatal(err)
	}
	s.XORKeyStream(nil, nil)
}

// TestCTRInterrupted fails, cancels or closes at each request of a stream
// of calls; after a failure the stream's position is unchanged.
func TestCTRInterrupted(t *testing.T) {
	r := mrand.New(mrand.NewPCG(5, 5))
	raw, iv := random(r, 16), random(r, 16)
	b, _ := aes.NewCipher(raw)
	data := random(r, 2000)
	cuts := []int{5, 300, 11, 700, 0, 984}
	want := make([]byte, len(data))
	cipher.NewCTR(b, iv).XORKeyStream(want, data)
	for k := uint64(1); k <= 20; k++ {
		t.Run(fmt.Sprintf("request%d", k), func(t *testing.T) {
			eng := newSoft(t, failAt(k, soft.Options{MaxInline: 256}))
			key, _ := aesKey(t, eng, raw)
			s, _ := ocipher.NewCTR(key, iv)
			c := s
			got := make([]byte, len(data))
			off := 0
			for _, n := range cuts {
				if err := c.XORKeyStreamContext(context.Background(), got[off:off+n], data[off:off+n]); err != nil {
					if !errors.Is(err, errBoom) {
						t.Fatal(err)
					}
					if err := c.XORKeyStreamContext(context.Background(), got[off:off+n], data[off:off+n]); err != nil {
						t.Fatal(err)
					}
				}
				off += n
			}
			if !bytes.Equal(got, want) {
				t.Fatal("wrong keystream after retry")
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		eng := newSoft(t, soft.Options{})
		key, _ := aesKey(t, eng, raw)
		s, _ := ocipher.NewCTR(key, iv)
		s.XORKeyStream(make([]byte, 7), data[:7])
		eng.Close()
		if err := s.XORKeyStreamContext(context.Background(), make([]byte, 100), data[:100]); !errors.Is(err, offload.ErrClosed) {
			t.Fatalf("XORKeyStreamContext = %v", err)
		}
		mustPanic(t, "use XORKeyStreamContext", func() { s.XORKeyStream(make([]byte, 100), data[:100]) })
	})
}
