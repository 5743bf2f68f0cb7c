package inject_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"hash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// fake is a small engine on the executor: Sign returns the digest
// reversed, Random returns N bytes of 7; the rest is unsupported.
type fake struct {
	pool   *exec.Executor[struct{}]
	closed atomic.Int32
	gate   chan struct{} // when not nil, Sign waits for it
}

func newFake() *fake {
	return &fake{pool: exec.New(exec.Config[struct{}]{Name: "fake", Workers: 2, MaxInFlight: 8})}
}

func (f *fake) Info() offload.Info {
	return offload.Info{Name: "fake", MaxInFlight: 8, MaxInline: 64, Algorithms: []offload.Algorithm{offload.Ed25519, offload.Random}}
}

func (f *fake) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	if req.Key == nil || req.Key.Engine() != offload.Engine(f) {
		return exec.Fail[[]byte](f.pool, offload.OpSign, offload.ErrForeignKey)
	}
	in := slices.Clone(req.Input())
	gate := f.gate
	return exec.Submit(f.pool, ctx, exec.Op[struct{}, []byte]{Kind: offload.OpSign, Call: req.Call, Key: req.Key,
		Work: func(struct{}) ([]byte, error) {
			if gate != nil {
				<-gate
			}
			slices.Reverse(in)
			return in, nil
		}})
}

func (f *fake) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	return exec.Fail[[]byte](f.pool, offload.OpDecrypt, offload.ErrUnsupported)
}

func (f *fake) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	return exec.Fail[offload.HashResult](f.pool, offload.OpHash, offload.ErrUnsupported)
}

func (f *fake) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	return exec.Fail[[]byte](f.pool, offload.OpCipher, offload.ErrUnsupported)
}

func (f *fake) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	return exec.Submit(f.pool, ctx, exec.Op[struct{}, []byte]{Kind: offload.OpRandom, Call: req.Call,
		Work: func(struct{}) ([]byte, error) {
			b := make([]byte, req.N)
			for i := range b {
				b[i] = 7
			}
			return b, nil
		}})
}

func (f *fake) Stats() offload.Snapshot { return f.pool.Stats() }

func (f *fake) Close() error { f.closed.Add(1); f.pool.Close(); return nil }

// importer is a fake that can import keys.
type importer struct{ *fake }

func (i importer) ImportKey(priv any) (*offload.Key, error) {
	return offload.NewKey(i, offload.KeyEd25519, 256, nil, priv), nil
}

func (i importer) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	return offload.NewKey(i, t, bits, nil, nil), nil
}

func (i importer) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	// Keys are made with the importer as their engine.
	if req.Key == nil || req.Key.Engine() != offload.Engine(i) {
		return exec.Fail[[]byte](i.pool, offload.OpSign, offload.ErrForeignKey)
	}
	return i.fake.Sign(ctx, &offload.SignRequest{Key: offload.NewKey(i.fake, req.Key.Type(), 0, nil, nil), Digest: req.Digest, Opts: req.Opts})
}

func sign(e offload.Engine, ctx context.Context, key *offload.Key, msg string) *offload.Future[[]byte] {
	return e.Sign(ctx, &offload.SignRequest{Key: key, Digest: []byte(msg), Opts: crypto.Hash(0)})
}

func TestWrapPassThrough(t *testing.T) {
	leaks := leakcheck.Check(t)
	inner := importer{newFake()}
	w := wrap(t, inner, inject.Options{})
	if w.Info().Name != "inject(fake)" || w.Info().MaxInline != 64 || inject.Unwrap(w) != offload.Engine(inner) {
		t.Fatalf("Info %+v", w.Info())
	}
	key, err := w.(offload.Importer).ImportKey("secret")
	if err != nil {
		t.Fatal(err)
	}
	if key.Engine() != offload.Engine(w) {
		t.Fatal("an imported key does not belong to the wrapper")
	}
	if ik, ok := key.Handle().(*offload.Key); !ok || ik.Engine() != offload.Engine(inner) {
		t.Fatal("an imported key's handle is not the inner engine's key")
	}
	gk, err := w.(offload.Generator).GenerateKey(context.Background(), offload.KeyEd25519, 0)
	if err != nil || gk.Engine() != offload.Engine(w) {
		t.Fatalf("GenerateKey: %v", err)
	}
	// A key of the inner engine's own is forwarded as it is.
	ik := key.Handle().(*offload.Key)
	if v, err := testwait.Wait(t, sign(w, context.Background(), ik, "xy"), "the signature"); string(v) != "yx" || err != nil {
		t.Fatalf("Sign with the inner key = %q, %v", v, err)
	}
	v, err := testwait.Wait(t, sign(w, context.Background(), key, "abc"), "the signature")
	if string(v) != "cba" || err != nil {
		t.Fatalf("Sign = %q, %v", v, err)
	}
	r, err := testwait.Wait(t, w.Random(context.Background(), &offload.RandomRequest{N: 3}), "the random bytes")
	if len(r) != 3 || err != nil {
		t.Fatalf("Random = %v, %v", r, err)
	}
	if s := w.Stats().Op(offload.OpSign); s.Completed != 2 {
		t.Fatalf("Stats is not the inner's: %+v", s)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if inner.closed.Load() != 1 {
		t.Fatal("Close did not close the inner engine")
	}
	w.Close()
	if inner.closed.Load() != 1 {
		t.Fatal("second Close closed the inner engine again")
	}
	for name, err := range map[string]error{
		"sign":    sign(w, context.Background(), key, "x").Err(),
		"decrypt": w.Decrypt(context.Background(), &offload.DecryptRequest{Key: key}).Err(),
		"hash":    w.Hash(context.Background(), &offload.HashRequest{Hash: crypto.SHA256}).Err(),
		"cipher":  w.Cipher(context.Background(), &offload.CipherRequest{Key: key}).Err(),
		"random":  w.Random(context.Background(), &offload.RandomRequest{N: 1}).Err(),
		"import":  func() error { _, err := w.(offload.Importer).ImportKey("x"); return err }(),
		"generate": func() error {
			_, err := w.(offload.Generator).GenerateKey(context.Background(), offload.KeyAES, 128)
			return err
		}(),
	} {
		if !errors.Is(err, offload.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	leaks()
}

func TestWrapNoImporter(t *testing.T) {
	w := wrap(t, newFake(), inject.Options{})
	defer w.Close()
	if _, ok := w.(offload.Importer); ok {
		t.Error("the wrapper of an engine that cannot import keys is an offload.Importer")
	}
	if _, ok := w.(offload.Generator); ok {
		t.Error("the wrapper of an engine that cannot generate keys is an offload.Generator")
	}
	if _, ok := w.(offload.HashSessioner); ok {
		t.Error("the wrapper of an engine without hash sessions is an offload.HashSessioner")
	}
}

func TestWrapLatency(t *testing.T) {
	inner := newFake()
	key := offload.NewKey(inner, offload.KeyEd25519, 256, nil, nil)
	w := wrap(t, inner, inject.Options{Latency: time.Millisecond, Jitter: time.Millisecond})
	defer w.Close()
	q := offload.NewQueue()
	for i := range 50 {
		q.Add(sign(w, context.Background(), key, string([]byte{'a', byte('0' + i%10)})), i)
	}
	dst := make([]offload.Completion, 8)
	n := 0
	for {
		m, err := q.Collect(context.Background(), dst)
		if err != nil {
			t.Fatal(err)
		}
		if m == 0 {
			break
		}
		for _, c := range dst[:m] {
			v, err := offload.Result[[]byte](c)
			i := c.Tag.(int)
			if err != nil || string(v) != string([]byte{byte('0' + i%10), 'a'}) {
				t.Fatalf("request %d: %q, %v", i, v, err)
			}
		}
		n += m
	}
	if n != 50 {
		t.Fatalf("collected %d", n)
	}
	if s := w.Stats().Op(offload.OpSign); s.Completed != 50 {
		t.Fatalf("inner stats %+v", s)
	}
}

func TestWrapDelayedContextEnds(t *testing.T) {
	inner := newFake()
	key := offload.NewKey(inner, offload.KeyEd25519, 256, nil, nil)
	w := wrap(t, inner, inject.Options{Latency: time.Hour})
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	f := sign(w, ctx, key, "x")
	if _, err := f.Poll(); err != offload.ErrNotReady {
		t.Fatalf("Poll = %v", err)
	}
	cancel()
	_, err := testwait.Wait(t, f, "the cancelled signature")
	var oe *offload.OpError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &oe) || oe.Engine != "inject(fake)" {
		t.Fatalf("Wait = %v", err)
	}
	// The inner engine did the work at once; its result was held back for
	// the delay, and the cancellation won.
	if s := w.Stats().Op(offload.OpSign); s.Submitted != 1 {
		t.Fatalf("inner engine stats: %+v", s)
	}
	// Already ended: fails at once.
	if err := sign(w, ctx, key, "y").Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("dead ctx: %v", err)
	}
}

func TestWrapForwardedContextEnds(t *testing.T) {
	inner := newFake()
	inner.gate = make(chan struct{})
	key := offload.NewKey(inner, offload.KeyEd25519, 256, nil, nil)
	w := wrap(t, inner, inject.Options{Latency: time.Microsecond})
	ctx, cancel := context.WithCancel(context.Background())
	f := sign(w, ctx, key, "x")
	testwait.Until(t, "the request to be in flight", func() bool { return w.Stats().Op(offload.OpSign).InFlight == 1 })
	cancel()
	if _, err := testwait.Wait(t, f, "the cancelled signature"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	close(inner.gate)
	w.Close()
	if v, err := f.Poll(); v != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("late result delivered: %q, %v", v, err)
	}
}

func TestWrapFaults(t *testing.T) {
	boom := errors.New("boom")
	for _, lat := range []time.Duration{0, time.Microsecond} {
		inner := newFake()
		key := offload.NewKey(inner, offload.KeyEd25519, 256, nil, nil)
		w := wrap(t, inner, inject.Options{Latency: lat, Faults: []inject.Fault{{Every: 2, Err: boom}}})
		defer w.Close() // closes inner too
		before := w.Stats().Op(offload.OpSign).Submitted
		for i := 1; i <= 6; i++ {
			v, err := testwait.Wait(t, sign(w, context.Background(), key, "ab"), "the signature")
			if i%2 == 0 {
				var oe *offload.OpError
				if !errors.Is(err, boom) || !errors.As(err, &oe) || oe.Op != offload.OpSign {
					t.Fatalf("latency %v request %d: %v", lat, i, err)
				}
				continue
			}
			if string(v) != "ba" || err != nil {
				t.Fatalf("latency %v request %d: %q %v", lat, i, v, err)
			}
		}
		if got := w.Stats().Op(offload.OpSign).Submitted - before; got != 3 {
			t.Fatalf("inner saw %d requests, want 3", got)
		}
	}
}

func TestWrapDrop(t *testing.T) {
	leaks := leakcheck.Check(t)
	inner := newFake()
	key := offload.NewKey(inner, offload.KeyEd25519, 256, nil, nil)
	w := wrap(t, inner, inject.Options{Faults: []inject.Fault{{If: func(r inject.Request) bool { return r.Op == offload.OpSign }, Drop: true}}})
	ctx, cancel := context.WithCancel(context.Background())
	a := sign(w, ctx, key, "a")
	b := sign(w, context.Background(), key, "b")
	delayed := wrap(t, inner, inject.Options{Latency: time.Hour})
	c := sign(delayed, context.Background(), key, "c")
	// Other requests pass while the dropped ones stay pending.
	if v, err := testwait.Wait(t, w.Random(context.Background(), &offload.RandomRequest{N: 2}), "the random bytes"); len(v) != 2 || err != nil {
		t.Fatalf("random: %v", err)
	}
	for _, f := range []*offload.Future[[]byte]{a, b, c} {
		if _, err := f.Poll(); err != offload.ErrNotReady {
			t.Fatalf("dropped request resolved: %v", err)
		}
	}
	cancel()
	if _, err := testwait.Wait(t, a, "the dropped request after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("dropped after cancel: %v", err)
	}
	var wg sync.WaitGroup
	for _, e := range []offload.Engine{w, delayed} {
		wg.Add(1)
		go func() { defer wg.Done(); e.Close() }()
	}
	testwait.Group(t, &wg, "both engines to close")
	for _, f := range []*offload.Future[[]byte]{b, c} {
		if _, err := f.Poll(); !errors.Is(err, offload.ErrClosed) {
			t.Fatalf("held request after Close: %v", err)
		}
	}
	// The delayed one was done by the inner engine and its result held back.
	if s := inner.Stats().Op(offload.OpSign); s.Submitted != 1 {
		t.Fatalf("dropped requests reached the inner engine: %+v", s)
	}
	leaks()
}

func TestWrapConcurrentCancel(t *testing.T) {
	leaks := leakcheck.Check(t)
	inner := newFake()
	key := offload.NewKey(inner, offload.KeyEd25519, 256, nil, nil)
	w := wrap(t, inner, inject.Options{Jitter: 500 * time.Microsecond,
		Faults: []inject.Fault{{Every: 7, Drop: true}, {Every: 5, Err: errors.New("x")}}})
	var wg sync.WaitGroup
	var resolved atomic.Int32
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		f := sign(w, ctx, key, "xy")
		f.OnResolve(func() { resolved.Add(1) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if i%2 == 0 {
				cancel()
			}
			if i%3 == 0 {
				return // leave it to Close or cancel
			}
			// Every context ends in the end, so even dropped requests resolve.
			wctx, wcancel := context.WithTimeout(ctx, time.Duration(i%4)*time.Millisecond)
			defer wcancel()
			v, err := f.Wait(wctx)
			if err == nil && string(v) != "yx" {
				t.Errorf("wrong result %q", v)
			}
		}()
	}
	testwait.Group(t, &wg, "300 waiters")
	w.Close()
	testwait.Until(t, "300 futures to resolve", func() bool { return resolved.Load() == 300 })
	leaks()
}

// inlineSpy records whether the requests it is given ask to run inline.
type inlineSpy struct {
	*fake
	inline atomic.Int32
}

func (s *inlineSpy) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	if req.Inline {
		s.inline.Add(1)
	}
	return s.fake.Random(ctx, req)
}

// A delayed request's result is held back past the point where its caller
// may give up, so it must not be computed into the caller's memory: it is
// never forwarded as inline.
func TestWrapDelayedIsNotInline(t *testing.T) {
	spy := &inlineSpy{fake: newFake()}
	w := wrap(t, spy, inject.Options{Latency: time.Millisecond})
	defer w.Close()
	ctx := context.Background()
	if _, err := testwait.Wait(t, w.Random(ctx, &offload.RandomRequest{Call: offload.Call{Inline: true}, N: 4}), "the delayed request"); err != nil {
		t.Fatal(err)
	}
	if n := spy.inline.Load(); n != 0 {
		t.Fatalf("%d delayed requests were forwarded as inline", n)
	}
	// Without a delay the caller's own goroutine forwards it, inline as asked.
	plain := wrap(t, spy, inject.Options{})
	defer plain.Close()
	if _, err := testwait.Wait(t, plain.Random(ctx, &offload.RandomRequest{Call: offload.Call{Inline: true}, N: 4}), "the plain request"); err != nil {
		t.Fatal(err)
	}
	if n := spy.inline.Load(); n != 1 {
		t.Fatalf("an undelayed inline request reached the inner engine %d times as inline, want 1", n)
	}
}

// sessions is a fake with device-held hash sessions (SHA-256 in memory).
type sessions struct{ *fake }

func (s sessions) HashSession(ctx context.Context, h crypto.Hash) (offload.HashSession, error) {
	return &fakeSession{h: h.New()}, nil
}

type fakeSession struct {
	h      hash.Hash
	closed atomic.Bool
}

func (s *fakeSession) Update(ctx context.Context, data []byte) *offload.Future[struct{}] {
	if s.closed.Load() {
		return offload.Failed[struct{}](offload.ErrClosed)
	}
	s.h.Write(data)
	return offload.Resolved(struct{}{}, nil)
}

func (s *fakeSession) Final(ctx context.Context) *offload.Future[[]byte] {
	if s.closed.Load() {
		return offload.Failed[[]byte](offload.ErrClosed)
	}
	return offload.Resolved(s.h.Sum(nil), nil)
}

func (s *fakeSession) Close() error { s.closed.Store(true); return nil }

// A wrapped engine keeps its hash sessions, and their requests go through
// the options: an injected fault fails the request and ends the inner
// session.
func TestWrapKeepsHashSessions(t *testing.T) {
	inner := sessions{newFake()}
	w := wrap(t, inner, inject.Options{Latency: time.Microsecond,
		Faults: []inject.Fault{{If: func(r inject.Request) bool { return r.Seq == 4 }, Err: errors.New("boom")}}})
	defer w.Close()
	hs, ok := w.(offload.HashSessioner)
	if !ok {
		t.Fatal("the wrapper hides the inner engine's hash sessions")
	}
	if _, ok := w.(offload.Importer); ok {
		t.Fatal("the wrapper claims an Importer the inner engine is not")
	}
	ctx := context.Background()
	s, err := hs.HashSession(ctx, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"ab", "c"} {
		if _, err := s.Update(ctx, []byte(part)).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := sha256.Sum256([]byte("abc"))
	if sum, err := s.Final(ctx).Wait(ctx); err != nil || !bytes.Equal(sum, want[:]) {
		t.Fatalf("Final = %x, %v", sum, err)
	}
	// The fourth request through the wrapper fails: the session is over.
	s, err = hs.HashSession(ctx, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, []byte("x")).Wait(ctx); err == nil {
		t.Fatal("the injected fault did not fail the update")
	}
	if _, err := s.Final(ctx).Wait(ctx); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("Final after an injected fault: %v", err)
	}
}

// wrap is inject.Wrap for options the test knows to be good.
func wrap(t *testing.T, eng offload.Engine, o inject.Options) offload.Engine {
	t.Helper()
	w, err := inject.Wrap(eng, o)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	return w
}

// Options that make no sense are refused, naming the option and its value,
// and the engine stays the caller's, open; zero options inject nothing.
func TestWrapRefuses(t *testing.T) {
	inner := newFake()
	defer inner.Close()
	for _, tc := range []struct {
		o    inject.Options
		want string
	}{
		{inject.Options{Latency: -time.Millisecond}, "inject: Options.Latency is -1ms: "},
		{inject.Options{Jitter: -1}, "inject: Options.Jitter is -1ns: "},
		{inject.Options{NotReady: -1}, "inject: Options.NotReady is -1: "},
		{inject.Options{Faults: []inject.Fault{{Err: errors.New("x")}, {Every: 3}}}, "inject: Options.Faults[1] has neither Err nor Drop: "},
	} {
		t.Run(tc.want, func(t *testing.T) {
			w, err := inject.Wrap(inner, tc.o)
			if w != nil || !errors.Is(err, offload.ErrInvalid) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Wrap = %v, %v; want nil and ErrInvalid, beginning %q", w, err, tc.want)
			}
		})
	}
	if w, err := inject.Wrap(nil, inject.Options{}); w != nil || !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("Wrap(nil) = %v, %v", w, err)
	}
	if v, err := testwait.Wait(t, inner.Random(context.Background(), &offload.RandomRequest{N: 2}), "the inner engine"); len(v) != 2 || err != nil {
		t.Fatalf("the inner engine after the refusals: %v, %v", v, err)
	}
}

// A request for no random bytes is answered by the wrapper at once: nothing
// is injected into it and the inner engine never sees it.
func TestWrapRandomEmpty(t *testing.T) {
	inner := newFake()
	w := wrap(t, inner, inject.Options{Faults: []inject.Fault{{Drop: true}}})
	defer w.Close()
	if v, err := w.Random(context.Background(), &offload.RandomRequest{}).Poll(); v == nil || len(v) != 0 || err != nil {
		t.Fatalf("N=0: %v, %v; want an empty slice and nil", v, err)
	}
	if _, err := w.Random(context.Background(), &offload.RandomRequest{N: -1}).Poll(); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("N=-1: %v, want ErrInvalid", err)
	}
	if n := inner.Stats().Op(offload.OpRandom).Submitted; n != 0 {
		t.Fatalf("the inner engine saw %d random requests", n)
	}
}
