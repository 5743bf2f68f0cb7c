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
	"strings"
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

func newSession(t testing.TB, eng offload.Engine, h crypto.Hash) *hasher.Session {
	t.Helper()
	s, err := hasher.NewSession(eng, h)
	if err != nil {
		t.Fatal(err)
	}
	return s
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
				h := newSession(t, eng, crypto.SHA256)
				for _, p := range split(rng, data) {
					if _, err := h.WriteContext(context.Background(), p); err != nil {
						t.Fatal(err)
					}
				}
				got, err := h.Final(context.Background(), nil)
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
	ctx := context.Background()
	// New refuses an engine that keeps the state on the device, where Sum
	// could not keep the hash.Hash contract; NewSession refuses any other.
	if h, err := hasher.New(eng, crypto.SHA256); h != nil || !errors.Is(err, offload.ErrUnsupported) || !strings.Contains(err.Error(), "NewSession") {
		t.Errorf("New on a device-state engine = %v, %v; want ErrUnsupported pointing to NewSession", h, err)
	}
	if s, err := hasher.NewSession(newSoft(t, soft.Options{}), crypto.SHA256); s != nil || !errors.Is(err, offload.ErrUnsupported) {
		t.Errorf("NewSession on soft = %v, %v; want ErrUnsupported", s, err)
	}
	if _, err := hasher.NewSession(eng, crypto.SHA3_256); !errors.Is(err, offload.ErrUnsupported) {
		t.Errorf("SHA3: %v", err)
	}
	h := newSession(t, eng, crypto.SHA256)
	if h.Size() != 32 || h.BlockSize() != 64 {
		t.Errorf("Size %d, BlockSize %d", h.Size(), h.BlockSize())
	}
	h.Write([]byte("data"))
	if got, err := h.Final(ctx, nil); err != nil || !bytes.Equal(got, sha256Of([]byte("data"))) {
		t.Fatalf("Final = %x, %v", got, err)
	}
	// After Final: Write, WriteContext and Final fail, saying why.
	if _, err := h.Write([]byte("more")); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Write after Final: %v", err)
	}
	if _, err := h.WriteContext(ctx, []byte("more")); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("WriteContext after Final: %v", err)
	}
	if _, err := h.Final(ctx, nil); !errors.Is(err, offload.ErrInvalid) || !strings.Contains(err.Error(), "Reset") {
		t.Errorf("Final after Final: %v", err)
	}
	// A nil context is refused and recorded nowhere.
	var nilCtx context.Context
	h.Reset()
	if _, err := h.WriteContext(nilCtx, []byte("x")); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("WriteContext(nil) = %v", err)
	}
	if _, err := h.Final(nilCtx, nil); !errors.Is(err, offload.ErrInvalid) || h.Err() != nil {
		t.Errorf("Final(nil) = %v, Err %v", err, h.Err())
	}
	// Reset starts again.
	h.Write([]byte("again"))
	if got, err := h.Final(ctx, nil); err != nil || !bytes.Equal(got, sha256Of([]byte("again"))) {
		t.Fatalf("after Reset: %x, %v", got, err)
	}
	if n := eng.openSessions(); n != 0 {
		t.Fatalf("%d sessions left open", n)
	}
}

func TestStatefulFailureSticks(t *testing.T) {
	for _, failAt := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			eng := newStateful(t, 64)
			eng.failAt = failAt
			h := newSession(t, eng, crypto.SHA256)
			data := bytes.Repeat([]byte("x"), 64*4+10) // 4 full Updates, the tail at Final
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
			_, serr := h.Final(context.Background(), nil)
			if err == nil {
				err = serr
			}
			if !errors.Is(serr, errDevice) || !errors.Is(err, errDevice) || !errors.Is(h.Err(), errDevice) {
				t.Fatalf("Final %v, Err %v; want the device failure", serr, h.Err())
			}
			if n := eng.openSessions(); n != 0 {
				t.Fatalf("%d sessions left open after the failure", n)
			}
			h.Reset()
			eng.failAt = 0
			h.Write(data)
			if got, err := h.Final(context.Background(), nil); err != nil || !bytes.Equal(got, sha256Of(data)) {
				t.Fatalf("after Reset: %x, %v", got, err)
			}
		})
	}
}

func TestStatefulOpenFailure(t *testing.T) {
	eng := newStateful(t, 64)
	eng.openErr = fmt.Errorf("busy: %w", offload.ErrBusy)
	h := newSession(t, eng, crypto.SHA256)
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
	if got, err := h.Final(context.Background(), nil); err != nil || !bytes.Equal(got, sha256Of(make([]byte, 110))) {
		t.Fatalf("%x, %v", got, err)
	}
}

func TestStatefulClose(t *testing.T) {
	eng := newStateful(t, 64)
	h := newSession(t, eng, crypto.SHA256)
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
	if got, err := h.Final(context.Background(), nil); err != nil || !bytes.Equal(got, sha256Of([]byte("abc"))) {
		t.Fatalf("after Close: %x, %v", got, err)
	}
}

func TestStatefulForgottenHash(t *testing.T) {
	eng := newStateful(t, 64)
	func() {
		h, err := hasher.NewSession(eng, crypto.SHA256)
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
			h := newSession(t, w, crypto.SHA256)
			data := bytes.Repeat([]byte("0123456789abcdef"), 20) // 5 updates of 64 bytes
			_, werr := h.WriteContext(context.Background(), data)
			sum, err := h.Final(context.Background(), nil)
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
