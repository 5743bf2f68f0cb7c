package hasher_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"testing"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/internal/softhsm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/pkcs11"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/offload/tpm"
)

// engines are every engine hasher runs on, each made for one test.
var engines = []struct {
	name string
	open func(t *testing.T) offload.Engine
}{
	{"soft", func(t *testing.T) offload.Engine { return newSoft(t, soft.Options{MaxInline: 256}) }},
	{"inject(soft)", func(t *testing.T) offload.Engine {
		w, err := inject.Wrap(newSoft(t, soft.Options{MaxInline: 256}), inject.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}},
	{"qat", func(t *testing.T) offload.Engine {
		e, err := qat.Open(context.Background(), qat.Config{MaxInline: 256})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}},
	{"tpm (simulator)", func(t *testing.T) offload.Engine {
		e, err := tpm.Open(context.Background(), tpm.Config{Simulator: true})
		return devicetest.Opened(t, e, err)
	}},
	{"pkcs11 (SoftHSM2)", func(t *testing.T) offload.Engine {
		tk := softhsm.Token{Label: "hasher", PIN: "1234"}
		softhsm.Start(t, tk)
		e, err := pkcs11.Open(context.Background(), pkcs11.Config{Module: softhsm.Module, TokenLabel: tk.Label, MaxInline: 256,
			PIN: func(context.Context) ([]byte, error) { return []byte(tk.PIN), nil }})
		return devicetest.Opened(t, e, err)
	}},
}

// TestHashContract: wherever New succeeds, the Hash keeps hash.Hash's whole
// contract, checked against the standard library's hash step by step;
// where it does not (engines that keep the state on the device), it fails
// with offload.ErrUnsupported and NewSession's Session does what its
// methods say.
func TestHashContract(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for _, h := range []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				t.Run(h.String(), func(t *testing.T) {
					eng := e.open(t)
					if a, _ := offload.HashAlgorithm(h); !eng.Info().Supports(a) {
						t.Skipf("%s claims no %v", e.name, h) // the TPM has no SHA-224
					}
					d, err := hasher.New(eng, h)
					if _, device := eng.(offload.HashSessioner); device {
						if d != nil || !errors.Is(err, offload.ErrUnsupported) {
							t.Fatalf("New on an engine that keeps the state on the device = %v, %v; want ErrUnsupported", d, err)
						}
						sessionContract(t, eng, h)
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					hashContract(t, d, stdNew(h))
				})
			}
		})
	}
}

// hashContract drives ours and std through the same calls and compares
// every observable answer.
func hashContract(t *testing.T, ours *hasher.Hash, std hash.Hash) {
	if ours.Size() != std.Size() || ours.BlockSize() != std.BlockSize() {
		t.Fatalf("Size %d, BlockSize %d; want %d, %d", ours.Size(), ours.BlockSize(), std.Size(), std.BlockSize())
	}
	r := rand.New(rand.NewPCG(1, 2))
	same := func(step string) {
		t.Helper()
		want := std.Sum([]byte("prefix"))
		for i := range 3 { // Sum any number of times, the state unchanged
			if got := ours.Sum([]byte("prefix")); !bytes.Equal(got, want) {
				t.Fatalf("%s: Sum #%d = %x, want %x", step, i+1, got, want)
			}
		}
	}
	same("empty")
	for i, n := range []int{1, ours.BlockSize() - 1, ours.BlockSize(), 300, 1000, 0, 5} {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if k, err := ours.Write(p); k != n || err != nil { // Write after Sum
			t.Fatalf("Write #%d = %d, %v", i, k, err)
		}
		std.Write(p)
		same(fmt.Sprintf("after write #%d of %d bytes", i, n))
	}
	ours.Reset()
	std.Reset()
	same("after Reset")
	ours.Write([]byte("abc"))
	std.Write([]byte("abc"))
	same("after Reset and a write")
}

// sessionContract: a Session hashes as the standard library does, Final
// ends it (a second Final and a Write after it fail, saying Reset), and a
// failure is recorded until Reset, after which the Session works again.
func sessionContract(t *testing.T, eng offload.Engine, h crypto.Hash) {
	ctx := context.Background()
	s, err := hasher.NewSession(eng, h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	std := stdNew(h)
	if s.Size() != std.Size() || s.BlockSize() != std.BlockSize() {
		t.Fatalf("Size %d, BlockSize %d; want %d, %d", s.Size(), s.BlockSize(), std.Size(), std.BlockSize())
	}
	data := bytes.Repeat([]byte("0123456789"), 100) // several Updates at MaxInline 256
	s.Write(data)
	std.Write(data)
	if got, err := s.Final(ctx, []byte("prefix")); err != nil || !bytes.Equal(got, std.Sum([]byte("prefix"))) {
		t.Fatalf("Final = %x, %v", got, err)
	}
	if _, err := s.Final(ctx, nil); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Final twice: %v; want ErrInvalid", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Write after Final: %v; want ErrInvalid", err)
	}
	// A failure mid-stream (the context ends under an Update) is recorded:
	// first more than one Update's worth, so the device session is open.
	s.Reset()
	if _, err := s.Write(make([]byte, eng.Info().MaxInline+1)); err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.WriteContext(ended, make([]byte, eng.Info().MaxInline)); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteContext with an ended context: %v", err)
	}
	if _, err := s.Final(ctx, nil); !errors.Is(err, context.Canceled) || !errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("Final after a failure = %v, Err %v; want the failure", err, s.Err())
	}
	// Reset after the failure: a new computation.
	s.Reset()
	s.Write(data)
	if got, err := s.Final(ctx, nil); err != nil || !bytes.Equal(got, std.Sum(nil)) {
		t.Fatalf("after Reset: %x, %v", got, err)
	}
}

// TestHashResetAfterFailure: on every engine where New succeeds, a Write
// the engine fails is recorded (Sum panics, WriteContext refuses) until
// Reset, after which the Hash works again.
func TestHashResetAfterFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			w, err := inject.Wrap(e.open(t), inject.Options{Faults: []inject.Fault{{
				If: func(r inject.Request) bool { return r.Seq == 1 }, Err: boom}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			d, err := hasher.New(w, crypto.SHA256)
			if errors.Is(err, offload.ErrUnsupported) {
				t.Skip("New refuses the engine (see TestHashContract's session checks)")
			}
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 1000)
			if _, err := d.Write(data); !errors.Is(err, boom) {
				t.Fatalf("Write = %v, want the injected failure", err)
			}
			if _, err := d.WriteContext(context.Background(), []byte("x")); !errors.Is(err, boom) {
				t.Fatalf("WriteContext after the failure = %v", err)
			}
			mustPanic(t, boom, func() { d.Sum(nil) })
			d.Reset()
			if d.Err() != nil {
				t.Fatalf("Err after Reset = %v", d.Err())
			}
			d.Write(data)
			want := stdNew(crypto.SHA256)
			want.Write(data)
			if got := d.Sum(nil); !bytes.Equal(got, want.Sum(nil)) {
				t.Fatalf("after Reset: %x", got)
			}
		})
	}
}

// TestNilContext: every context-taking form refuses a nil context with an
// error wrapping offload.ErrInvalid, and the Hash is unchanged.
func TestNilContext(t *testing.T) {
	var nilCtx context.Context
	d := newHash(t, newSoft(t, soft.Options{}), crypto.SHA256)
	d.Write([]byte("abc"))
	if _, err := d.WriteContext(nilCtx, []byte("x")); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("WriteContext(nil) = %v", err)
	}
	if _, err := d.SumContext(nilCtx, nil); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("SumContext(nil) = %v", err)
	}
	want := stdNew(crypto.SHA256)
	want.Write([]byte("abc"))
	if got := d.Sum(nil); !bytes.Equal(got, want.Sum(nil)) || d.Err() != nil {
		t.Errorf("after the refusals: %x, %v", got, d.Err())
	}
	eng := newSoft(t, soft.Options{})
	if _, err := hasher.Digest(nilCtx, eng, crypto.SHA256, bytes.NewReader(nil)).Poll(); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Digest(nil) = %v", err)
	}
}
