package hasher_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
	"github.com/offcrypt/offcrypt/offload/soft"
)

var errBoom = errors.New("injected device failure")

// stream returns a long input cut into writes of random sizes.
func stream(seed uint64) (data []byte, pieces [][]byte) {
	r := rand.New(rand.NewPCG(seed, 99))
	data = make([]byte, 40000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data, split(r, data)
}

// TestFaultAtEveryRequest fails request k of a long stream, for every k,
// and checks that the failed WriteContext (or SumContext) changed nothing
// and that retrying it gives the right digest.
func TestFaultAtEveryRequest(t *testing.T) {
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA512} {
		data, pieces := stream(uint64(h))
		want := stdNew(h)
		want.Write(data)
		wantSum := want.Sum(nil)

		// Count the requests of a clean run.
		hk := &hook{Engine: newSoft(t, soft.Options{MaxInline: 1024})}
		d := newHash(t, hk, h)
		for _, p := range pieces {
			d.Write(p)
		}
		if !bytes.Equal(d.Sum(nil), wantSum) {
			t.Fatal("clean run: wrong digest")
		}
		total := int(hk.n.Load())

		for k := 1; k <= total; k++ {
			t.Run(fmt.Sprintf("%v/request%d", h, k), func(t *testing.T) {
				eng := newSoft(t, soft.Options{MaxInline: 1024, Faults: []inject.Fault{{
					If:  func(r inject.Request) bool { return r.Seq == uint64(k) },
					Err: errBoom,
				}}})
				d := newHash(t, eng, h)
				ctx := context.Background()
				failures := 0
				for _, p := range pieces {
					before, _ := d.MarshalBinary()
					n, err := d.WriteContext(ctx, p)
					if err != nil {
						failures++
						if n != 0 || !errors.Is(err, errBoom) {
							t.Fatalf("WriteContext = %d, %v", n, err)
						}
						if after, _ := d.MarshalBinary(); !bytes.Equal(after, before) {
							t.Fatal("the failed WriteContext changed the state")
						}
						if n, err = d.WriteContext(ctx, p); n != len(p) || err != nil {
							t.Fatalf("retry: WriteContext = %d, %v", n, err)
						}
					}
				}
				sum, err := d.SumContext(ctx, nil)
				if err != nil {
					failures++
					if !errors.Is(err, errBoom) {
						t.Fatal(err)
					}
					sum, err = d.SumContext(ctx, nil)
				}
				if err != nil || !bytes.Equal(sum, wantSum) {
					t.Fatalf("digest %x, %v; want %x", sum, err, wantSum)
				}
				if failures != 1 {
					t.Fatalf("%d failures seen, want 1", failures)
				}
			})
		}
	}
}

// TestPlainWriteFailure checks that a failure through the plain hash.Hash
// methods can never produce a digest.
func TestPlainWriteFailure(t *testing.T) {
	eng := newSoft(t, soft.Options{MaxInline: 256, Faults: []inject.Fault{{
		If:  func(r inject.Request) bool { return r.Seq == 3 },
		Err: errBoom,
	}}})
	d := newHash(t, eng, crypto.SHA256)
	p := make([]byte, 1000) // four requests
	if n, err := d.Write(p); n != 0 || !errors.Is(err, errBoom) {
		t.Fatalf("Write = %d, %v; want 0 and the device error", n, err)
	}
	if !errors.Is(d.Err(), errBoom) {
		t.Fatalf("Err = %v", d.Err())
	}
	// Everything refuses now, even input that needs no request.
	if n, err := d.Write([]byte("x")); n != 0 || !errors.Is(err, errBoom) {
		t.Fatalf("Write after failure = %d, %v", n, err)
	}
	if _, err := d.WriteContext(context.Background(), p); !errors.Is(err, errBoom) {
		t.Fatalf("WriteContext after failure = %v", err)
	}
	if _, err := d.SumContext(context.Background(), nil); !errors.Is(err, errBoom) {
		t.Fatalf("SumContext after failure = %v", err)
	}
	if _, err := d.MarshalBinary(); !errors.Is(err, errBoom) {
		t.Fatalf("MarshalBinary after failure = %v", err)
	}
	if _, err := d.Clone(); !errors.Is(err, errBoom) {
		t.Fatalf("Clone after failure = %v", err)
	}
	mustPanic(t, errBoom, func() { d.Sum(nil) })
	func() {
		defer func() {
			const want = "hasher: soft hash: injected device failure (Sum after a failed Write)"
			if got := fmt.Sprint(recover()); got != want {
				t.Errorf("Sum after a failed Write panicked with\n\t%s\nwant\n\t%s", got, want)
			}
		}()
		d.Sum(nil)
	}()

	d.Reset()
	if d.Err() != nil {
		t.Fatal("Reset kept the error")
	}
	d.Write(p)
	if want := sha256.Sum256(p); !bytes.Equal(d.Sum(nil), want[:]) {
		t.Fatal("wrong digest after Reset")
	}
}

func TestSumFailurePanics(t *testing.T) {
	eng := newSoft(t, soft.Options{Faults: []inject.Fault{{Err: errBoom}}})
	d := newHash(t, eng, crypto.SHA256)
	d.Write([]byte("short"))
	mustPanic(t, errBoom, func() { d.Sum(nil) })
	if _, err := d.SumContext(context.Background(), nil); !errors.Is(err, errBoom) {
		t.Fatalf("SumContext = %v", err)
	}
}

func mustPanic(t *testing.T, want error, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		v := recover()
		err, ok := v.(error)
		if !ok || !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "hasher: ") {
			t.Fatalf("panic value %v, want an error wrapping %v", v, want)
		}
	}()
	f()
}

// TestInterruptedStream cancels the context, or closes the engine, in the
// middle of a multi-request write.
func TestInterruptedStream(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i)
	}
	for _, tc := range []struct {
		name  string
		act   func(cancel context.CancelFunc, eng *soft.Engine)
		want  error
		retry bool // a retry on the same engine can succeed
	}{
		{"cancel", func(cancel context.CancelFunc, _ *soft.Engine) { cancel() }, context.Canceled, true},
		{"close", func(_ context.CancelFunc, eng *soft.Engine) { eng.Close() }, offload.ErrClosed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := newSoft(t, soft.Options{MaxInline: 1024})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hk := &hook{Engine: eng}
			hk.before = func(n int64, _ *offload.HashRequest) {
				if n == 4 {
					tc.act(cancel, eng)
				}
			}
			d := newHash(t, hk, crypto.SHA256)
			d.Write(data[:100])
			before, _ := d.MarshalBinary()
			n, err := d.WriteContext(ctx, data[100:])
			if n != 0 || !errors.Is(err, tc.want) {
				t.Fatalf("WriteContext = %d, %v; want 0, %v", n, err, tc.want)
			}
			if after, _ := d.MarshalBinary(); !bytes.Equal(after, before) {
				t.Fatal("the interrupted WriteContext changed the state")
			}
			if !tc.retry {
				if _, err := d.SumContext(context.Background(), nil); !errors.Is(err, offload.ErrClosed) {
					t.Fatalf("SumContext on a closed engine = %v", err)
				}
				return
			}
			if _, err := d.WriteContext(context.Background(), data[100:]); err != nil {
				t.Fatal(err)
			}
			if want := sha256.Sum256(data); !bytes.Equal(d.Sum(nil), want[:]) {
				t.Fatal("wrong digest after retry")
			}
		})
	}
}

// TestDeadContext checks that a context that has already ended fails a
// write that needs the engine, and costs nothing for one that does not.
func TestDeadContext(t *testing.T) {
	eng := newSoft(t, soft.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := hasher.New(eng, crypto.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := d.WriteContext(ctx, []byte("fits")); n != 4 || err != nil {
		t.Fatalf("small WriteContext = %d, %v", n, err)
	}
	if _, err := d.WriteContext(ctx, make([]byte, 500)); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteContext = %v", err)
	}
	if _, err := d.SumContext(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SumContext = %v", err)
	}
}
