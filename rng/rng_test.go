package rng_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/rng"
)

// fakeEngine answers random requests from crypto/rand, resolved at once,
// and can misbehave: fail from the failAt-th request on, or answer short or
// long.
type fakeEngine struct {
	maxInline int
	failAt    int64 // 0: never
	delta     int   // added to the length of every answer
	requests  atomic.Int64
	largest   atomic.Int64
	stats     offload.Stats

	mu      sync.Mutex
	answers [][]byte // every answer given, which the engine still holds
}

var _ offload.Engine = (*fakeEngine)(nil)

var errDevice = errors.New("device on fire")

func (e *fakeEngine) Info() offload.Info {
	return offload.Info{Name: "fake", MaxInFlight: 4, MaxInline: e.maxInline, Algorithms: []offload.Algorithm{offload.Random}}
}

func (e *fakeEngine) Random(_ context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	n := e.requests.Add(1)
	for {
		m := e.largest.Load()
		if int64(req.N) <= m || e.largest.CompareAndSwap(m, int64(req.N)) {
			break
		}
	}
	start := e.stats.Start(offload.OpRandom)
	if req.N < 0 || (e.maxInline > 0 && req.N > e.maxInline) {
		err := offload.Errorf("fake", offload.OpRandom, "%w: %d bytes", offload.ErrInvalid, req.N)
		e.stats.Finish(offload.OpRandom, start, err)
		return offload.Failed[[]byte](err)
	}
	if e.failAt > 0 && n >= e.failAt {
		err := offload.Wrap("fake", offload.OpRandom, errDevice)
		e.stats.Finish(offload.OpRandom, start, err)
		return offload.Failed[[]byte](err)
	}
	b := make([]byte, max(req.N+e.delta, 0))
	rand.Read(b)
	e.mu.Lock()
	e.answers = append(e.answers, b)
	e.mu.Unlock()
	e.stats.Finish(offload.OpRandom, start, nil)
	return offload.Resolved(b, nil)
}

func (e *fakeEngine) Sign(context.Context, *offload.SignRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](offload.ErrUnsupported)
}
func (e *fakeEngine) Decrypt(context.Context, *offload.DecryptRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](offload.ErrUnsupported)
}
func (e *fakeEngine) Hash(context.Context, *offload.HashRequest) *offload.Future[offload.HashResult] {
	return offload.Failed[offload.HashResult](offload.ErrUnsupported)
}
func (e *fakeEngine) Cipher(context.Context, *offload.CipherRequest) *offload.Future[[]byte] {
	return offload.Failed[[]byte](offload.ErrUnsupported)
}
func (e *fakeEngine) Stats() offload.Snapshot { return e.stats.Snapshot() }
func (e *fakeEngine) Close() error            { return nil }

func newSoft(t *testing.T, o soft.Options) *soft.Engine {
	t.Helper()
	e, err := soft.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// readers lists the ways of reading n bytes that every table runs through.
var readers = []struct {
	name string
	read func(t testing.TB, r *rng.Reader, p []byte) (int, error)
}{
	{"Read", func(_ testing.TB, r *rng.Reader, p []byte) (int, error) { return r.Read(p) }},
	{"ReadContext", func(_ testing.TB, r *rng.Reader, p []byte) (int, error) {
		return r.ReadContext(context.Background(), p)
	}},
	{"ReadAsync", func(t testing.TB, r *rng.Reader, p []byte) (int, error) {
		b, err := testwait.Wait(t, r.ReadAsync(context.Background(), len(p)), "ReadAsync")
		if err != nil {
			return 0, err
		}
		if len(b) != len(p) {
			return 0, errors.New("ReadAsync: wrong length")
		}
		return copy(p, b), nil
	}},
}

// TestChunking reads sizes around the cap and checks the number and size of
// requests, on the fake and on soft.
func TestChunking(t *testing.T) {
	const chunk = 128 // soft.MinMaxInline
	sizes := []struct {
		n, requests int
	}{{1, 1}, {chunk - 1, 1}, {chunk, 1}, {chunk + 1, 2}, {3 * chunk, 3}, {10*chunk + 5, 11}}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			for _, sz := range sizes {
				fake := &fakeEngine{maxInline: chunk}
				softEng := newSoft(t, soft.Options{MaxInline: chunk, Workers: 2})
				for _, eng := range []offload.Engine{fake, softEng} {
					before := eng.Stats().Op(offload.OpRandom)
					p := make([]byte, sz.n)
					n, err := rd.read(t, rng.New(eng), p)
					if n != sz.n || err != nil {
						t.Fatalf("%s: read %d = %d, %v", eng.Info().Name, sz.n, n, err)
					}
					after := eng.Stats().Op(offload.OpRandom)
					if got := after.Submitted - before.Submitted; got != uint64(sz.requests) {
						t.Errorf("%s: read %d took %d requests, want %d", eng.Info().Name, sz.n, got, sz.requests)
					}
					if sz.n >= 32 && bytes.Count(p, []byte{0}) == len(p) {
						t.Errorf("%s: read %d left the buffer zero", eng.Info().Name, sz.n)
					}
				}
				if m := fake.largest.Load(); m > chunk {
					t.Errorf("a request asked for %d bytes, above the cap %d", m, chunk)
				}
			}
		})
	}
}

// TestFillsEveryByte checks that every chunk lands in its place: a buffer
// pre-filled with a marker has none of it left in a long run.
func TestFillsEveryByte(t *testing.T) {
	r := rng.New(&fakeEngine{maxInline: 128})
	p := make([]byte, 128*8+17)
	for i := range 64 {
		for j := range p {
			p[j] = 0xa5
		}
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		// Per 128-byte chunk, all bytes equal to the marker by chance has
		// probability 2^-1024; look for a run of 16.
		if bytes.Contains(p, bytes.Repeat([]byte{0xa5}, 16)) {
			t.Fatalf("round %d: marker left in the buffer", i)
		}
	}
}

// TestFailure: a failure part-way returns the bytes filled so far and an
// error, never fewer bytes with a nil error.
func TestFailure(t *testing.T) {
	const chunk = 128
	cases := []struct {
		name    string
		eng     func(t *testing.T) offload.Engine
		n       int
		wantN   int // for Read and ReadContext
		wantErr error
	}{
		{"fake/fails-at-3", func(*testing.T) offload.Engine { return &fakeEngine{maxInline: chunk, failAt: 3} }, 5 * chunk, 2 * chunk, errDevice},
		{"fake/fails-at-1", func(*testing.T) offload.Engine { return &fakeEngine{maxInline: chunk, failAt: 1} }, 5 * chunk, 0, errDevice},
		{"fake/short", func(*testing.T) offload.Engine { return &fakeEngine{maxInline: chunk, delta: -1} }, 3 * chunk, chunk - 1, io.ErrUnexpectedEOF},
		{"fake/empty", func(*testing.T) offload.Engine { return &fakeEngine{maxInline: chunk, delta: -chunk} }, 3 * chunk, 0, io.ErrUnexpectedEOF},
		{"soft/every-2", func(t *testing.T) offload.Engine {
			return newSoft(t, soft.Options{MaxInline: chunk, Workers: 1, Faults: []inject.Fault{{Every: 2, Err: errDevice}}})
		}, 5 * chunk, chunk, errDevice},
		{"soft/closed", func(t *testing.T) offload.Engine {
			e := newSoft(t, soft.Options{MaxInline: chunk})
			e.Close()
			return e
		}, 5 * chunk, 0, offload.ErrClosed},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					p := make([]byte, c.n)
					n, err := rd.read(t, rng.New(c.eng(t)), p)
					if err == nil {
						t.Fatalf("read %d = %d, nil; want an error", c.n, n)
					}
					if !errors.Is(err, c.wantErr) {
						t.Errorf("err = %v, want %v", err, c.wantErr)
					}
					if n >= c.n {
						t.Errorf("n = %d with an error", n)
					}
					if rd.name != "ReadAsync" && n != c.wantN {
						t.Errorf("n = %d, want %d", n, c.wantN)
					}
				})
			}
		})
	}
}

func TestLongAnswer(t *testing.T) {
	r := rng.New(&fakeEngine{maxInline: 64, delta: 1})
	n, err := r.Read(make([]byte, 100))
	if err == nil || n > 100 {
		t.Fatalf("Read with an over-long answer = %d, %v; want an error", n, err)
	}
}

func TestEdgeCases(t *testing.T) {
	fake := &fakeEngine{maxInline: 128}
	r := rng.New(fake)
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
	if n, err := r.ReadContext(context.Background(), []byte{}); n != 0 || err != nil {
		t.Errorf("ReadContext(empty) = %d, %v", n, err)
	}
	if b, err := r.ReadAsync(context.Background(), 0).Poll(); len(b) != 0 || err != nil {
		t.Errorf("ReadAsync(0) = %v, %v", b, err)
	}
	if fake.requests.Load() != 0 {
		t.Errorf("zero-length reads made %d requests", fake.requests.Load())
	}
	if _, err := r.ReadAsync(context.Background(), -1).Poll(); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("ReadAsync(-1) err = %v, want ErrInvalid", err)
	}
	if _, err := rng.New(nil).Read(make([]byte, 1)); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Read on a nil engine: err = %v, want ErrInvalid", err)
	}
	if _, err := rng.New(nil).ReadAsync(context.Background(), 1).Poll(); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("ReadAsync on a nil engine: err = %v, want ErrInvalid", err)
	}
	// An engine that states no cap is read in 4096-byte requests.
	nocap := &fakeEngine{}
	if n, err := rng.New(nocap).Read(make([]byte, 10000)); n != 10000 || err != nil || nocap.requests.Load() != 3 {
		t.Errorf("no cap: Read = %d, %v in %d requests; want 10000, nil in 3", n, err, nocap.requests.Load())
	}
	// A cancelled context fails without filling anything.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := newSoft(t, soft.Options{})
	if n, err := rng.New(e).ReadContext(ctx, make([]byte, 10)); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ReadContext = %d, %v", n, err)
	}
	if _, err := testwait.Wait(t, rng.New(e).ReadAsync(ctx, 10), "ReadAsync with a cancelled context"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ReadAsync err = %v", err)
	}
}

// TestNoCopyLeft: once a read has returned, the engine's result buffers
// hold no random byte (each answer is cleared after its copy), whether the
// read is blocking or a future, in one chunk or several.
func TestNoCopyLeft(t *testing.T) {
	for _, async := range []bool{false, true} {
		for _, n := range []int{100, 1000} {
			t.Run(fmt.Sprintf("async=%v/%d", async, n), func(t *testing.T) {
				fake := &fakeEngine{maxInline: 128}
				r := rng.New(fake)
				var got []byte
				if async {
					var err error
					if got, err = testwait.Wait(t, r.ReadAsync(context.Background(), n), "ReadAsync"); err != nil {
						t.Fatal(err)
					}
				} else {
					got = make([]byte, n)
					if _, err := r.Read(got); err != nil {
						t.Fatal(err)
					}
				}
				if bytes.Equal(got, make([]byte, n)) {
					t.Fatal("read nothing but zeros")
				}
				fake.mu.Lock()
				defer fake.mu.Unlock()
				if len(fake.answers) != (n+127)/128 {
					t.Fatalf("%d answers, want %d", len(fake.answers), (n+127)/128)
				}
				for i, b := range fake.answers {
					if !bytes.Equal(b, make([]byte, len(b))) {
						t.Errorf("answer %d still holds random bytes after the read", i)
					}
				}
			})
		}
	}
}

// TestBadInput: a nil context and a ReadAsync past MaxAsync (1<<40, which
// would have to be allocated) are refused with offload.ErrInvalid, without
// a request.
func TestBadInput(t *testing.T) {
	fake := &fakeEngine{maxInline: 128}
	r := rng.New(fake)
	var nilCtx context.Context
	if n, err := r.ReadContext(nilCtx, make([]byte, 8)); n != 0 || !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("ReadContext(nil) = %d, %v", n, err)
	}
	if _, err := testwait.Wait(t, r.ReadAsync(nilCtx, 8), "ReadAsync(nil)"); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("ReadAsync(nil) = %v", err)
	}
	for _, n := range []int{rng.MaxAsync + 1, 1 << 40, math.MaxInt} {
		if _, err := testwait.Wait(t, r.ReadAsync(context.Background(), n), "ReadAsync"); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("ReadAsync(%d) = %v; want ErrInvalid", n, err)
		}
	}
	if k := fake.requests.Load(); k != 0 {
		t.Errorf("%d requests reached the engine", k)
	}
}

// TestConcurrent reads from many goroutines through one Reader on soft.
func TestConcurrent(t *testing.T) {
	r := rng.New(newSoft(t, soft.Options{MaxInline: 128, Workers: 2, MaxInFlight: 3}))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range 20 {
				p := make([]byte, 1000)
				if n, err := r.Read(p); n != len(p) || err != nil {
					errs <- err
					return
				}
				if _, err := r.ReadAsync(context.Background(), 700).Wait(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	testwait.Group(t, &wg, "16 readers")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
