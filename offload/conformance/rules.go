package conformance

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// rules checks the behaviours offload's docs fix for every engine where
// engines once differed: a request for no random bytes, a GCM ciphertext
// shorter than the tag, a context that ends while the work runs on the
// caller's goroutine, a nil request or context, and (on the engine as it
// is) options out of range, malformed private keys and GCM at every size.
func (s *suite) rules(t *testing.T) {
	t.Run("random_empty", s.randomEmpty)
	t.Run("gcm_short", s.gcmShort)
	t.Run("inline_context_ends", s.inlineContextEnds)
	t.Run("nil_input", s.nilInput)
	if s.mode.opts == nil {
		t.Run("negative_options", s.negativeOptions)
		t.Run("import_invalid", s.importInvalid)
		t.Run("gcm_sizes", s.gcmSizes)
	}
}

// randomEmpty: N = 0 is an empty, non-nil answer with a nil error, whatever
// the context, and reaches no device; N < 0 is ErrInvalid.
func (s *suite) randomEmpty(t *testing.T) {
	if !s.info.Supports(offload.Random) {
		t.Skip("the engine claims no random bytes")
	}
	before := s.Engine.Stats().Op(offload.OpRandom).Submitted
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, ctx := range []context.Context{context.Background(), ended} {
		for _, call := range []offload.Call{{}, {Inline: true}, {NoWait: true}} {
			v, err := waitErr(t, s, s.Engine.Random(ctx, &offload.RandomRequest{Call: call}))
			if v == nil || len(v) != 0 || err != nil {
				t.Errorf("Random(N=0, %+v, context ended %v) = %v, %v; want an empty slice and nil", call, ctx.Err() != nil, v, err)
			}
		}
	}
	if after := s.Engine.Stats().Op(offload.OpRandom).Submitted; after != before {
		t.Errorf("N=0 reached the engine's executor: %d submissions", after-before)
	}
	expectErr(t, s, s.Engine.Random(context.Background(), &offload.RandomRequest{N: -1}), offload.ErrInvalid, "Random(N=-1)")
}

// gcmShort: a GCM ciphertext too short to hold the tag fails to
// authenticate, as crypto/cipher says, and is not ErrInvalid.
func (s *suite) gcmShort(t *testing.T) {
	if !s.info.Supports(offload.AESGCM) {
		t.Skip("the engine claims no AES-GCM")
	}
	key, _ := s.aesKey(t)
	nonce := make([]byte, 12)
	for _, n := range []int{0, 1, 15} {
		for _, call := range []offload.Call{{}, {Inline: true}} {
			ct := make([]byte, n)
			rand.Read(ct)
			v, err, ok := s.cipher(t, &offload.CipherRequest{Call: call, Key: key, Mode: offload.ModeGCM, Decrypt: true, IV: nonce, Input: ct})
			if ok && (v != nil || !errors.Is(err, gcmauth.ErrOpen) || errors.Is(err, offload.ErrInvalid)) {
				t.Errorf("GCM open of %d bytes (%+v) = %q, %v; want crypto/cipher's %q and not ErrInvalid", n, call, v, err, gcmauth.ErrOpen)
			}
		}
	}
}

// inlineContextEnds: a request that lets the engine work on the caller's
// goroutine, with a context that ends while the work runs, fails with the
// context's error and delivers nothing; whatever resolves with a nil error
// checks out. The work is the slowest the engine claims (an RSA signature,
// else the behaviour workload), and the deadline a tenth of its measured
// time, so that it ends mid-work; as timers may fire late, the check asks
// for one such request among many, and passes over requests whose context
// ended before they were made.
func (s *suite) inlineContextEnds(t *testing.T) {
	w := s.slowWork(t)
	start := time.Now()
	if v, ok := wait(t, s, w.submit(context.Background(), 0)); ok && !w.check(0, v) {
		t.Fatalf("%s: a result that does not check out", w.name)
	}
	deadline := max(time.Since(start)/10, time.Microsecond)
	const tries = 50
	hits := 0
	for i := 1; i <= tries && hits == 0; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		if ctx.Err() != nil {
			cancel()
			continue
		}
		f := w.submit(ctx, i)
		v, err := waitErr(t, s, f)
		cancel()
		switch {
		case s.injected(f.Err()):
		case errors.Is(err, context.DeadlineExceeded):
			hits++
			if v != nil {
				t.Errorf("%s: the context's error came with a result", w.name)
			}
		case err == nil:
			if !w.check(i, v) {
				t.Errorf("%s: a delivered result does not check out", w.name)
			}
		default:
			t.Errorf("%s with a %v deadline: %v", w.name, deadline, err)
		}
	}
	if hits == 0 {
		t.Errorf("%s: %d inline requests with a %v deadline, a tenth of the work's time: none failed with the context's error", w.name, tries, deadline)
	}
}

// slowWork is the slowest signature the engine claims, asked for with
// Call.Inline.
func (s *suite) slowWork(t *testing.T) workload {
	inline := offload.Call{Inline: true}
	if !s.info.Supports(offload.RSAPKCS1v15) {
		return s.workloadWith(t, inline)
	}
	k := s.key(t, offload.KeyRSA, 0).key
	pub := k.Public().(*rsa.PublicKey)
	return workload{"RSA-PKCS1v15",
		func(ctx context.Context, i int) *offload.Future[[]byte] {
			return s.Engine.Sign(ctx, &offload.SignRequest{Call: inline, Key: k,
				Digest: hashOf(crypto.SHA256, msgOf(i)), Opts: crypto.SHA256})
		},
		func(i int, v []byte) bool {
			return rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashOf(crypto.SHA256, msgOf(i)), v) == nil
		}}
}

// negativeOptions: an engine refuses a negative option when it is made,
// naming the option and its value; so does inject.Wrap around it.
func (s *suite) negativeOptions(t *testing.T) {
	if s.Refuse != nil {
		errs := s.Refuse(t)
		if len(errs) == 0 {
			t.Error("Setup.Refuse named no option")
		}
		for name, err := range errs {
			if !errors.Is(err, offload.ErrInvalid) || !strings.Contains(err.Error(), name+" is -1") {
				t.Errorf("%s = -1: %v; want an error wrapping offload.ErrInvalid that says %q", name, err, name+" is -1")
			}
		}
	}
	for name, o := range map[string]inject.Options{
		"Options.Latency":  {Latency: -1},
		"Options.Jitter":   {Jitter: -1},
		"Options.NotReady": {NotReady: -1},
	} {
		w, err := inject.Wrap(s.Engine, o)
		if w != nil || !errors.Is(err, offload.ErrInvalid) || !strings.Contains(err.Error(), name+" is -1") {
			t.Errorf("inject.Wrap with %s = -1: %v, %v; want an error wrapping offload.ErrInvalid", name, w, err)
		}
	}
	// The engine is still the caller's, and open.
	if s.info.Supports(offload.Random) {
		if _, ok := wait(t, s, s.Engine.Random(context.Background(), &offload.RandomRequest{N: 1})); !ok {
			t.Error("the engine failed after the refused wraps")
		}
	}
}
