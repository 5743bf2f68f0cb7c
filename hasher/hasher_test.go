package hasher_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
)

var hashes = []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// stdNew returns the standard library's hash for h.
func stdNew(h crypto.Hash) hash.Hash {
	switch h {
	case crypto.SHA224:
		return sha256.New224()
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	}
	return sha512.New()
}

func newSoft(t testing.TB, o soft.Options) *soft.Engine {
	t.Helper()
	e, err := soft.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newHash(t testing.TB, eng offload.Engine, h crypto.Hash) *hasher.Hash {
	t.Helper()
	d, err := hasher.New(eng, h)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// hook wraps an engine, counting hash requests and letting a test act on
// the nth one (n counts from 1).
type hook struct {
	offload.Engine
	n      atomic.Int64
	sizes  []int
	before func(n int64, req *offload.HashRequest)
	info   func(offload.Info) offload.Info
}

func (h *hook) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	n := h.n.Add(1)
	h.sizes = append(h.sizes, len(req.Data))
	if h.before != nil {
		h.before(n, req)
	}
	return h.Engine.Hash(ctx, req)
}

func (h *hook) Info() offload.Info {
	if h.info != nil {
		return h.info(h.Engine.Info())
	}
	return h.Engine.Info()
}

// split cuts data at random points into pieces of random size, some empty,
// some long.
func split(r *rand.Rand, data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		var n int
		switch r.IntN(4) {
		case 0:
			n = 0
		case 1:
			n = r.IntN(8)
		case 2:
			n = r.IntN(300)
		default:
			n = r.IntN(5000)
		}
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func TestMatchesStandardLibrary(t *testing.T) {
	for _, inline := range []int{256, 1280, 0} {
		eng := newSoft(t, soft.Options{MaxInline: inline})
		for _, h := range hashes {
			t.Run(fmt.Sprintf("%v/inline%d", h, inline), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(h), uint64(inline)))
				for range 20 {
					data := make([]byte, r.IntN(20000))
					for i := range data {
						data[i] = byte(r.Uint32())
					}
					d, want := newHash(t, eng, h), stdNew(h)
					for _, p := range split(r, data) {
						if n, err := d.Write(p); n != len(p) || err != nil {
							t.Fatalf("Write = %d, %v", n, err)
						}
						want.Write(p)
						if r.IntN(4) == 0 { // Sum in the middle disturbs nothing
							if got, w := d.Sum([]byte("x")), want.Sum([]byte("x")); !bytes.Equal(got, w) {
								t.Fatalf("intermediate Sum = %x, want %x", got, w)
							}
						}
					}
					if got, w := d.Sum(nil), want.Sum(nil); !bytes.Equal(got, w) {
						t.Fatalf("Sum = %x, want %x", got, w)
					}
				}
			})
		}
	}
}

func TestSizes(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	for _, h := range hashes {
		t.Run(h.String(), func(t *testing.T) {
			d, s := newHash(t, eng, h), stdNew(h)
			if d.Size() != s.Size() || d.BlockSize() != s.BlockSize() {
				t.Fatalf("Size, BlockSize = %d, %d; want %d, %d", d.Size(), d.BlockSize(), s.Size(), s.BlockSize())
			}
			if got := len(d.Sum(nil)); got != s.Size() {
				t.Fatalf("len(Sum) = %d", got)
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	noSHA256 := &hook{Engine: eng, info: func(i offload.Info) offload.Info {
		i.Algorithms = []offload.Algorithm{offload.SHA384}
		return i
	}}
	tiny := &hook{Engine: eng, info: func(i offload.Info) offload.Info { i.MaxInline = 100; return i }}
	for _, tc := range []struct {
		name string
		eng  offload.Engine
		h    crypto.Hash
	}{
		{"MD5", eng, crypto.MD5},
		{"SHA1", eng, crypto.SHA1},
		{"SHA512_256", eng, crypto.SHA512_256},
		{"SHA3_256", eng, crypto.SHA3_256},
		{"zero", eng, 0},
		{"out of range", eng, crypto.Hash(200)},
		{"not claimed by the engine", noSHA256, crypto.SHA256},
		{"payload cap below one block", tiny, crypto.SHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hasher.New(tc.eng, tc.h)
			if !errors.Is(err, offload.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("New = %v, want ErrUnsupported", err)
			}
		})
	}
	if _, err := hasher.New(nil, crypto.SHA256); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("New(nil) = %v", err)
	}
}

// TestRequests checks the wolfHSM packing: no request for input that fits in
// the partial block, and each request as full as the cap allows.
func TestRequests(t *testing.T) {
	// wolfHSM's 1,280-byte comm buffer less its 64-byte SHA-256 header:
	// 19 SHA-256 blocks or 9 SHA-512 blocks per message.
	eng := newSoft(t, soft.Options{MaxInline: 1216})
	for _, tc := range []struct {
		name   string
		h      crypto.Hash
		writes []int
		sizes  []int // Data sizes of the requests, the final one included
	}{
		{"empty", crypto.SHA256, nil, []int{0}},
		{"zero-length writes", crypto.SHA256, []int{0, 0, 0}, []int{0}},
		{"small writes", crypto.SHA256, []int{10, 20, 33}, []int{63}},
		{"one block exactly", crypto.SHA256, []int{64}, []int{64, 0}},
		{"top up then pack", crypto.SHA256, []int{30, 200}, []int{192, 38}},
		{"19 blocks per message", crypto.SHA256, []int{1216 * 3}, []int{1216, 1216, 1216, 0}},
		{"partial block first", crypto.SHA256, []int{10, 1216 * 2}, []int{1216, 1216, 10}},
		{"SHA-512 9 blocks", crypto.SHA512, []int{1152*2 + 5}, []int{1152, 1152, 5}},
		{"SHA-384 tail", crypto.SHA384, []int{127, 1}, []int{128, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hk := &hook{Engine: eng}
			d, want := newHash(t, hk, tc.h), stdNew(tc.h)
			for _, n := range tc.writes {
				p := bytes.Repeat([]byte{byte(n)}, n)
				d.Write(p)
				want.Write(p)
			}
			if got := d.Sum(nil); !bytes.Equal(got, want.Sum(nil)) {
				t.Fatalf("wrong digest")
			}
			if fmt.Sprint(hk.sizes) != fmt.Sprint(tc.sizes) {
				t.Fatalf("request sizes %v, want %v", hk.sizes, tc.sizes)
			}
		})
	}
}

func TestHugeWrite(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 1280})
	hk := &hook{Engine: eng}
	data := make([]byte, 4<<20+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	d := newHash(t, hk, crypto.SHA256)
	d.Write([]byte("abc"))
	if n, err := d.WriteContext(context.Background(), data); n != len(data) || err != nil {
		t.Fatalf("WriteContext = %d, %v", n, err)
	}
	want := sha256.New()
	want.Write([]byte("abc"))
	want.Write(data)
	if !bytes.Equal(d.Sum(nil), want.Sum(nil)) {
		t.Fatal("wrong digest")
	}
	if min := int64((len(data) + 3) / 1280); hk.n.Load() < min {
		t.Fatalf("%d requests for %d bytes, want at least %d", hk.n.Load(), len(data), min)
	}
}

func TestWriteAfterSumAndReset(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 256})
	for _, h := range hashes {
		t.Run(h.String(), func(t *testing.T) {
			d, want := newHash(t, eng, h), stdNew(h)
			for i := range 10 {
				p := bytes.Repeat([]byte{byte(i)}, 100*i+3)
				d.Write(p)
				want.Write(p)
				if !bytes.Equal(d.Sum(nil), want.Sum(nil)) {
					t.Fatalf("step %d: wrong digest", i)
				}
			}
			d.Reset()
			want.Reset()
			d.Write([]byte("after reset"))
			want.Write([]byte("after reset"))
			if !bytes.Equal(d.Sum(nil), want.Sum(nil)) {
				t.Fatal("wrong digest after Reset")
			}
		})
	}
}

func TestMarshalMatchesStandardLibrary(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 1280})
	r := rand.New(rand.NewPCG(1, 2))
	for _, h := range hashes {
		t.Run(h.String(), func(t *testing.T) {
			for range 30 {
				data := make([]byte, r.IntN(3000))
				for i := range data {
					data[i] = byte(r.Uint32())
				}
				d, s := newHash(t, eng, h), stdNew(h)
				for _, p := range split(r, data) {
					d.Write(p)
					s.Write(p)
				}
				got, err := d.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				want, _ := s.(encoding.BinaryMarshaler).MarshalBinary()
				if !bytes.Equal(got, want) {
					t.Fatalf("after %d bytes MarshalBinary =\n%x\nwant\n%x", len(data), got, want)
				}
				app, err := d.AppendBinary([]byte("prefix"))
				if err != nil || !bytes.Equal(app, append([]byte("prefix"), want...)) {
					t.Fatalf("AppendBinary = %x, %v", app, err)
				}

				// Our state resumes in the standard library, and the
				// standard library's resumes here.
				more := []byte("and some more input that crosses a block boundary, surely, for SHA-224 and SHA-256 at least")
				s2 := stdNew(h)
				if err := s2.(encoding.BinaryUnmarshaler).UnmarshalBinary(got); err != nil {
					t.Fatal(err)
				}
				d2 := newHash(t, eng, h)
				if err := d2.UnmarshalBinary(want); err != nil {
					t.Fatal(err)
				}
				s.Write(more)
				s2.Write(more)
				d2.Write(more)
				if w := s.Sum(nil); !bytes.Equal(s2.Sum(nil), w) || !bytes.Equal(d2.Sum(nil), w) {
					t.Fatal("resumed states disagree")
				}
			}
		})
	}
}

func TestUnmarshalBad(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	d := newHash(t, eng, crypto.SHA256)
	d.Write([]byte("keep me"))
	before, _ := d.MarshalBinary()
	s512, _ := sha512.New().(encoding.BinaryMarshaler).MarshalBinary()
	s224, _ := sha256.New224().(encoding.BinaryMarshaler).MarshalBinary()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"short", before[:50]},
		{"long", append(append([]byte(nil), before...), 0)},
		{"SHA-512 state", s512},
		{"SHA-224 state", s224},
		{"bad magic", append([]byte("xyz\x03"), before[4:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := d.UnmarshalBinary(tc.b); !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("UnmarshalBinary = %v, want ErrInvalid", err)
			}
			if after, _ := d.MarshalBinary(); !bytes.Equal(after, before) {
				t.Fatal("a failed UnmarshalBinary changed the state")
			}
		})
	}
}

func TestClone(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 256})
	for _, h := range hashes {
		t.Run(h.String(), func(t *testing.T) {
			d, s := newHash(t, eng, h), stdNew(h)
			p := bytes.Repeat([]byte("clone"), 77)
			d.Write(p)
			s.Write(p)
			c, err := d.Clone()
			if err != nil {
				t.Fatal(err)
			}
			s2 := s.(hash.Cloner)
			sc, _ := s2.Clone()
			c.Write([]byte("only the clone"))
			sc.Write([]byte("only the clone"))
			d.Write([]byte("only the original"))
			s.Write([]byte("only the original"))
			if !bytes.Equal(c.Sum(nil), sc.Sum(nil)) || !bytes.Equal(d.Sum(nil), s.Sum(nil)) {
				t.Fatal("clone and original are not independent")
			}
		})
	}
}

// TestHMAC runs crypto/hmac, which ignores Write's error, over a Hash.
func TestHMAC(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 256})
	key := []byte("hmac key")
	mac := hmac.New(func() hash.Hash { return newHash(t, eng, crypto.SHA384) }, key)
	want := hmac.New(sha512.New384, key)
	for i := range 5 {
		p := bytes.Repeat([]byte{byte(i)}, 333*i)
		mac.Write(p)
		want.Write(p)
	}
	if !hmac.Equal(mac.Sum(nil), want.Sum(nil)) {
		t.Fatal("HMAC over hasher differs")
	}
	mac.Reset()
	want.Reset()
	if !hmac.Equal(mac.Sum(nil), want.Sum(nil)) {
		t.Fatal("HMAC over hasher differs after Reset")
	}
}

// lossy drops the last block of every non-final request that has more
// than one: a device that loses data.
type lossy struct{ offload.Engine }

func (l lossy) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	r := *req
	if !r.Final && len(r.Data) > 64 {
		r.Data = r.Data[:len(r.Data)-64]
	}
	return l.Engine.Hash(ctx, &r)
}

// liar answers every final request with a digest of the wrong length.
type liar struct{ offload.Engine }

func (l liar) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	if req.Final {
		return offload.Resolved(offload.HashResult{Sum: []byte{1, 2, 3}}, nil)
	}
	return l.Engine.Hash(ctx, req)
}

func TestMisbehavingEngine(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	d := newHash(t, lossy{eng}, crypto.SHA256)
	if _, err := d.WriteContext(context.Background(), make([]byte, 640)); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("lost data: WriteContext = %v, want an error", err)
	}
	d = newHash(t, liar{eng}, crypto.SHA256)
	if _, err := d.SumContext(context.Background(), nil); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("short digest: SumContext = %v, want an error", err)
	}
}
