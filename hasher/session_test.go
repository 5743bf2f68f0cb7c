package hasher_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// errDevice is the failure the fake device injects.
var errDevice = errors.New("fake device failure")

// stateful is an engine that keeps hash state "on the device": it refuses
// stateless hash requests and serves hash sessions with the standard
// library's hashes. It checks the HashSession contract as it goes.
type stateful struct {
	offload.Engine
	maxInline int

	mu       sync.Mutex
	open     int   // sessions not finished or closed
	opened   int   // sessions ever opened
	updates  []int // sizes of every Update
	failAt   int   // fail the failAt-th Update (counted from 1 over all sessions); 0: never
	openErr  error // HashSession fails with it
	misuse   []string
	finished int
}

var _ offload.HashSessioner = (*stateful)(nil)

func (e *stateful) Info() offload.Info {
	i := e.Engine.Info()
	i.MaxInline = e.maxInline
	return i
}

func (e *stateful) Hash(context.Context, *offload.HashRequest) *offload.Future[offload.HashResult] {
	return offload.Failed[offload.HashResult](fmt.Errorf("stateful: %w", offload.ErrUnsupported))
}

func (e *stateful) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.openErr != nil {
		return nil, e.openErr
	}
	if a, ok := offload.HashAlgorithm(h); !ok || !e.Info().Supports(a) {
		return nil, offload.ErrUnsupported
	}
	e.open++
	e.opened++
	return &fakeSession{e: e, h: h.New()}, nil
}

func (e *stateful) openSessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.open
}

type fakeSession struct {
	e    *stateful
	h    hash.Hash
	over bool
}

// end finishes the session. e.mu is held.
func (s *fakeSession) end() {
	if !s.over {
		s.over = true
		s.e.open--
	}
}

func (s *fakeSession) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.over {
		e.misuse = append(e.misuse, "Update on a finished session")
		return offload.Failed[struct{}](offload.ErrInvalid)
	}
	if len(data) > e.maxInline {
		e.misuse = append(e.misuse, fmt.Sprintf("Update of %d bytes > %d", len(data), e.maxInline))
	}
	e.updates = append(e.updates, len(data))
	if e.failAt == len(e.updates) {
		s.end()
		return offload.Failed[struct{}](errDevice)
	}
	if err := ctx.Err(); err != nil {
		s.end()
		return offload.Failed[struct{}](err)
	}
	s.h.Write(data)
	return offload.Resolved(struct{}{}, nil)
}

func (s *fakeSession) Final(ctx context.Context) *offload.Future[[]byte] {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.over {
		e.misuse = append(e.misuse, "Final on a finished session")
		return offload.Failed[[]byte](offload.ErrInvalid)
	}
	s.end()
	e.finished++
	return offload.Resolved(s.h.Sum(nil), nil)
}

func (s *fakeSession) Close() error {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.end()
	return nil
}

func newStateful(t *testing.T, maxInline int) *stateful {
	t.Helper()
	e := &stateful{Engine: newSoft(t, soft.Options{}), maxInline: maxInline}
	t.Cleanup(func() {
		if len(e.misuse) > 0 {
			t.Errorf("contract misuse: %v", e.misuse)
		}
	})
	return e
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func TestStatefulSplits(t *testing.T) {
	for _, maxInline := range []int{64, 100, 1000, 4096} {
		t.Run(fmt.Sprint(maxInline), func(t *testing.T) {
			eng := newStateful(t, maxInline)
			rng := rand.New(rand.NewPCG(uint64(maxInline), 1))
			for round := range 20 {
				data := make([]byte, rng.IntN(20000))
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				h := newHash(t, eng, crypto.SHA256)
				for _, p := range split(rng, data) {
					if _, err := h.WriteContext(context.Background(), p); err != nil {
						t.Fatal(err)
					}
				}
				got, err := h.SumContext(context.Background(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, sha256Of(data)) {
					t.Fatalf("round %d, %d bytes: digest %x, want %x", round, len(data), got, sha256Of(data))
				}
			}
			if n := eng.openSessions(); n != 0 {
				t.Fatalf("%d sessions left open", n)
			}
			for _, n := range eng.updates {
				if n > maxInline || n == 0 {
					t.Fatalf("an Update of %d bytes (cap %d)", n, maxInline)
				}
			}
		})
	}
}

func TestStatefulRefusals(t *testing.T) {
	eng := newStateful(t, 256)
	h := newHash(t, eng, crypto.SHA256)
	h.Write([]byte("data"))
	_, err1 := h.MarshalBinary()
	_, err2 := h.Clone()
	err3 := h.UnmarshalBinary(make([]byte, 108))
	for i, err := range []error{err1, err2, err3} {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%d: %v, want errors.ErrUnsupported", i, err)
		}
	}
	if got := h.Sum(nil); !bytes.Equal(got, sha256Of([]byte("data"))) {
		t.Fatalf("Sum %x", got)
	}
	// After Sum: Write, WriteContext, SumContext fail, Sum panics.
	if _, err := h.Write([]byte("more")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Write after Sum: %v", err)
	}
	if _, err := h.WriteContext(context.Background(), []byte("more")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("WriteContext after Sum: %v", err)
	}
	if _, err := h.SumContext(context.Background(), nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SumContext after Sum: %v", err)
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("Sum after Sum panicked with %v", err)
			}
		}()
		h.Sum(nil)
	}()
	// Reset starts again.
	h.Reset()
	h.Write([]byte("again"))
	if got := h.Sum(nil); !bytes.Equal(got, sha256Of([]byte("again"))) {
		t.Fatalf("after Reset: %x", got)
	}
	if n := eng.openSessions(); n != 0 {
		t.Fatalf("%d sessions left open", n)
	}
	// An unclaimed hash is refused by New.
	if _, err := hasher.New(eng, crypto.SHA3_256); !errors.Is(err, offload.ErrUnsupported) {
		t.Errorf("SHA3: %v", err)
	}
}

func TestStatefulFailureSticks(t *testing.T) {
	for _, failAt := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			eng := newStateful(t, 64)
			eng.failAt = failAt
			h := newHash(t, eng, crypto.SHA256)
			data := bytes.Repeat([]byte("x"), 64*4+10) // 4 full Updates, the tail at Sum
			_, werr := h.WriteContext(context.Background(), data)
			var err error
			if werr != nil {
				err = werr
				if !errors.Is(werr, errDevice) {
					t.Fatalf("WriteContext: %v", werr)
				}
				// Sticky: every use fails with it until Reset.
				if _, err := h.WriteContext(context.Background(), []byte("y")); !errors.Is(err, errDevice) {
					t.Errorf("WriteContext after the failure: %v", err)
				}
				if _, err := h.Write([]byte("y")); !errors.Is(err, errDevice) {
					t.Errorf("Write after the failure: %v", err)
				}
			}
			_, serr := h.SumContext(context.Background(), nil)
			if err == nil {
				err = serr
			}
			if !errors.Is(serr, errDevice) || !errors.Is(err, errDevice) || !errors.Is(h.Err(), errDevice) {
				t.Fatalf("SumContext %v, Err %v; want the device failure", serr, h.Err())
			}
			func() {
				defer func() {
					if err, _ := recover().(error); !errors.Is(err, errDevice) {
						t.Errorf("Sum panicked with %v", err)
					}
				}()
				h.Sum(nil)
			}()
			if n := eng.openSessions(); n != 0 {
				t.Fatalf("%d sessions left open after the failure", n)
			}
			h.Reset()
			eng.failAt = 0
			h.Write(data)
			if got := h.Sum(nil); !bytes.Equal(got, sha256Of(data)) {
				t.Fatalf("after Reset: %x", got)
			}
		})
	}
}

func TestStatefulOpenFailure(t *testing.T) {
	eng := newStateful(t, 64)
	eng.openErr = fmt.Errorf("busy: %w", offload.ErrBusy)
	h := newHash(t, eng, crypto.SHA256)
	if _, err := h.WriteContext(context.Background(), make([]byte, 10)); err != nil {
		t.Fatalf("a write that needs no request: %v", err)
	}
	if _, err := h.WriteContext(context.Background(), make([]byte, 100)); !errors.Is(err, offload.ErrBusy) {
		t.Fatalf("WriteContext: %v", err)
	}
	// Nothing was sent: the Hash is as before and may go on.
	eng.mu.Lock()
	eng.openErr = nil
	eng.mu.Unlock()
	if _, err := h.WriteContext(context.Background(), make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if got, err := h.SumContext(context.Background(), nil); err != nil || !bytes.Equal(got, sha256Of(make([]byte, 110))) {
		t.Fatalf("%x, %v", got, err)
	}
}

func TestStatefulClose(t *testing.T) {
	eng := newStateful(t, 64)
	h := newHash(t, eng, crypto.SHA256)
	h.Write(make([]byte, 200))
	if n := eng.openSessions(); n != 1 {
		t.Fatalf("%d sessions open, want 1", n)
	}
	for range 2 {
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := eng.openSessions(); n != 0 {
		t.Fatalf("%d sessions open after Close", n)
	}
	// Usable again, as after Reset.
	h.Write([]byte("abc"))
	if got := h.Sum(nil); !bytes.Equal(got, sha256Of([]byte("abc"))) {
		t.Fatalf("after Close: %x", got)
	}
	// Close on a stateless engine does nothing.
	plain := newHash(t, newSoft(t, soft.Options{}), crypto.SHA256)
	plain.Write([]byte("abc"))
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	if got := plain.Sum(nil); !bytes.Equal(got, sha256Of([]byte("abc"))) {
		t.Fatalf("stateless after Close: %x", got)
	}
}

func TestStatefulForgottenHash(t *testing.T) {
	eng := newStateful(t, 64)
	func() {
		h, err := hasher.New(eng, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(make([]byte, 100))
	}()
	for range 200 {
		runtime.GC()
		if eng.openSessions() == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the session of a collected Hash was never closed")
}

func TestStatefulDigest(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 1000, 64*7 + 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			eng := newStateful(t, 64)
			data := bytes.Repeat([]byte{byte(n), 7}, n)[:n]
			got, err := testwait.Wait(t, hasher.Digest(context.Background(), eng, crypto.SHA256, bytes.NewReader(data)), "Digest")
			if err != nil || !bytes.Equal(got, sha256Of(data)) {
				t.Fatalf("%x, %v", got, err)
			}
			if k := eng.openSessions(); k != 0 {
				t.Fatalf("%d sessions open", k)
			}
		})
	}
	t.Run("failure", func(t *testing.T) {
		eng := newStateful(t, 64)
		eng.failAt = 2
		_, err := testwait.Wait(t, hasher.Digest(context.Background(), eng, crypto.SHA256, bytes.NewReader(make([]byte, 1000))), "Digest that fails")
		if !errors.Is(err, errDevice) {
			t.Fatalf("%v", err)
		}
		if k := eng.openSessions(); k != 0 {
			t.Fatalf("%d sessions open", k)
		}
	})
}

// An engine whose hashing keeps state on the device keeps it through
// inject.Wrap: hasher finds the wrapper's hash sessions and uses them (a
// wrapper that hid them would make it send stateless requests, which such
// an engine refuses), and the wrapper's faults reach the session's
// requests.
func TestStatefulThroughInject(t *testing.T) {
	boom := errors.New("injected")
	for _, tc := range []struct {
		name    string
		faultAt uint64 // the wrapper's request that fails; 0: none
	}{{"clean", 0}, {"fault on the second update", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			eng := newStateful(t, 64)
			o := inject.Options{Latency: time.Microsecond}
			if tc.faultAt != 0 {
				o.Faults = []inject.Fault{{If: func(r inject.Request) bool { return r.Seq == tc.faultAt }, Err: boom}}
			}
			w, err := inject.Wrap(eng, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			h := newHash(t, w, crypto.SHA256)
			data := bytes.Repeat([]byte("0123456789abcdef"), 20) // 5 updates of 64 bytes
			_, werr := h.WriteContext(context.Background(), data)
			sum, err := h.SumContext(context.Background(), nil)
			if tc.faultAt != 0 {
				if !errors.Is(errors.Join(werr, err), boom) {
					t.Fatalf("the injected fault was lost: write %v, sum %v", werr, err)
				}
			} else if werr != nil || err != nil || !bytes.Equal(sum, sha256Of(data)) {
				t.Fatalf("write %v; sum %x, %v; want %x", werr, sum, err, sha256Of(data))
			}
			if eng.opened == 0 {
				t.Fatal("hasher did not use the wrapped engine's hash sessions")
			}
			if n := eng.openSessions(); n != 0 {
				t.Fatalf("%d sessions left open", n)
			}
		})
	}
}
