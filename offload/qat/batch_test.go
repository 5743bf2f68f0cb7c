package qat

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
)

// gcmReqs makes n GCM seal requests of distinct inputs, and what
// crypto/cipher makes of each.
func gcmReqs(t *testing.T, k *offload.Key, key []byte, n int) ([]*offload.CipherRequest, [][]byte) {
	t.Helper()
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	reqs := make([]*offload.CipherRequest, n)
	want := make([][]byte, n)
	for i := range reqs {
		in := fmt.Appendf(nil, "record %d", i)
		reqs[i] = &offload.CipherRequest{Key: k, Mode: offload.ModeGCM, IV: make([]byte, 12), Input: in}
		want[i] = g.Seal(nil, make([]byte, 12), in, nil)
	}
	return reqs, want
}

// TestBatch: GCM requests go to the device together, a full batch at once
// and a partial one after BatchWait, with the results of requests sent
// one by one.
func TestBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int
		wait  time.Duration
		n     int
		calls uint64 // submission calls for the n requests
	}{
		{"unbatched", 0, 0, 8, 8},
		{"full batches", 4, time.Hour, 8, 2},
		{"one partial batch", 64, time.Millisecond, 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, m := open(t, ModelConfig{Instances: 1, NoLatency: true}, Config{Batch: tc.batch, BatchWait: tc.wait})
			key := bytes.Repeat([]byte{7}, 16)
			k := importKey(t, e, key)
			reqs, want := gcmReqs(t, k, key, tc.n)
			before := m.Submissions()
			fs := make([]*offload.Future[[]byte], tc.n)
			for i, r := range reqs {
				fs[i] = e.Cipher(context.Background(), r)
			}
			for i, f := range fs {
				got, err := testwait.Wait(t, f, "batched GCM")
				if err != nil || !bytes.Equal(got, want[i]) {
					t.Errorf("request %d: %x, %v", i, got, err)
				}
			}
			if calls := m.Submissions() - before; calls != tc.calls {
				t.Errorf("%d submission calls for %d requests, want %d", calls, tc.n, tc.calls)
			}
		})
	}
}

// TestBatchCancel: a request whose context ends while it waits for its
// batch resolves at once and never reaches the device; Close submits what
// waits without waiting for BatchWait.
func TestBatchCancel(t *testing.T) {
	e, m := open(t, ModelConfig{Instances: 1, NoLatency: true}, Config{Batch: 64, BatchWait: time.Hour})
	key := bytes.Repeat([]byte{7}, 16)
	k := importKey(t, e, key)
	reqs, want := gcmReqs(t, k, key, 2)
	ctx, cancel := context.WithCancel(context.Background())
	gone := e.Cipher(ctx, reqs[0])
	kept := e.Cipher(context.Background(), reqs[1])
	cancel()
	if _, err := testwait.Wait(t, gone, "cancelled while batched"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while batched: %v", err)
	}
	before := m.Submissions()
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	testwait.Recv(t, done, "Close with a batch waiting")
	got, err := testwait.Wait(t, kept, "batched request across Close")
	if err != nil || !bytes.Equal(got, want[1]) {
		t.Errorf("the waiting request: %x, %v", got, err)
	}
	if calls := m.Submissions() - before; calls != 1 {
		t.Errorf("Close made %d submission calls, want 1 (the live request alone)", calls)
	}
	if s := e.Stats().Op(offload.OpCipher); s.InFlight != 0 || s.Failed != 1 || s.Completed != 1 {
		t.Errorf("stats: %+v", s)
	}
}

// TestBatchRingFull: a batch that finds the ring full is tried again and,
// still refused after Config.Retries, fails with offload.ErrBusy; a batch
// refused otherwise fails each request with the device's status.
func TestBatchRingFull(t *testing.T) {
	e, m := open(t, ModelConfig{Instances: 1, NoLatency: true},
		Config{Batch: 4, BatchWait: time.Hour, Retries: 2, MaxBackoff: time.Microsecond})
	key := bytes.Repeat([]byte{7}, 16)
	k := importKey(t, e, key)
	for _, st := range []Status{StatusRetry, StatusFail} {
		m.FailSubmissions(st)
		before := m.Submissions()
		reqs, _ := gcmReqs(t, k, key, 4)
		fs := make([]*offload.Future[[]byte], len(reqs))
		for i, r := range reqs {
			fs[i] = e.Cipher(context.Background(), r)
		}
		for _, f := range fs {
			_, err := testwait.Wait(t, f, "refused batch")
			if st == StatusRetry && !errors.Is(err, offload.ErrBusy) || st != StatusRetry && !errors.Is(err, st) {
				t.Errorf("batch refused with %v: %v", st, err)
			}
		}
		calls := m.Submissions() - before
		if want := uint64(3); st == StatusRetry && calls != want {
			t.Errorf("%d submission calls for a batch refused with RETRY, want %d (the first and Retries more)", calls, want)
		}
	}
}

// TestPerformPrefix: the model takes the prefix of a batch its ring has
// room for and answers RETRY for the rest.
func TestPerformPrefix(t *testing.T) {
	m, err := NewModel(ModelConfig{Instances: 1, SymRing: 2, NoLatency: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	in := m.insts[0]
	s, err := in.newSession(sessionSetup{kind: gcmSeal, key: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 4)
	reqs := make([]symReq, 4)
	for i := range reqs {
		reqs[i] = symReq{s: s, op: symOp{iv: make([]byte, 12), in: []byte{byte(i)}}, done: func(_ []byte, err error) { results <- err }}
	}
	n, err := in.perform(reqs)
	if n != 2 || !errors.Is(err, StatusRetry) {
		t.Fatalf("perform took %d, %v; want 2, StatusRetry", n, err)
	}
	reap := func() {
		reaped := 0
		testwait.Until(t, "two completions", func() bool { reaped += in.poll(); return reaped == 2 })
	}
	reap()
	for range 2 {
		if err := testwait.Recv(t, results, "a completion"); err != nil {
			t.Error(err)
		}
	}
	if n, err := in.perform(reqs[2:]); n != 2 || err != nil {
		t.Errorf("after the ring emptied: %d, %v", n, err)
	}
	reap()
}
