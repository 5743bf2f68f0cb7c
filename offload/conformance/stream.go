package conformance

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// errPosition is the fault that the fault-at-every-position check injects
// at one chosen request of a stream.
var errPosition = errors.New("conformance: injected fault at a chosen position")

var hashOfAlg = map[offload.Algorithm]crypto.Hash{
	offload.SHA224: crypto.SHA224, offload.SHA256: crypto.SHA256,
	offload.SHA384: crypto.SHA384, offload.SHA512: crypto.SHA512,
}

// maxAttempts bounds how often a stream request that failed is sent again.
const maxAttempts = 10

// hashStream is a message cut into hash requests the way a streaming client
// cuts it: whole-block requests, the state carried from each result to the
// next request, and a final request with the tail of less than one block.
type hashStream struct {
	h     crypto.Hash
	data  []byte
	sizes []int // the non-final requests' sizes, whole blocks each
}

// tail returns what the final request carries.
func (st hashStream) tail() []byte {
	n := 0
	for _, sz := range st.sizes {
		n += sz
	}
	return st.data[n:]
}

// requests returns how many requests the stream makes when none fails.
func (st hashStream) requests() int { return len(st.sizes) + 1 }

// seededRand returns a deterministic generator for seed.
func seededRand(seed uint64) (*rand.Rand, *rand.ChaCha8) {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	c := rand.NewChaCha8(s)
	return rand.New(c), c
}

// randomStream returns a stream of n random bytes for h, cut into requests
// of random whole-block sizes of at most maxInline bytes, half of them at
// most four blocks, so that both many small and a few large requests occur.
func randomStream(h crypto.Hash, n, maxInline int, seed uint64) hashStream {
	rng, src := seededRand(seed)
	data := make([]byte, n)
	src.Read(data)
	block := h.New().BlockSize()
	maxBlocks := maxInline / block
	st := hashStream{h: h, data: data}
	left := n / block
	for left > 0 {
		limit := min(left, maxBlocks)
		if rng.IntN(2) == 0 {
			limit = min(limit, 4)
		}
		b := 1 + rng.IntN(limit)
		st.sizes = append(st.sizes, b*block)
		left -= b
	}
	return st
}

// run sends the stream through eng one request at a time and returns the
// digest. A request that fails is sent again, unchanged and from the state
// the caller held before it, as long as retry(seq, err) says so (seq counts
// every Hash call run makes on eng, from 1); run gives up after maxAttempts
// tries of one request, or on an error retry refuses, and returns that error.
// It never calls t.Fatal, so streams may run on goroutines of their own.
func (st hashStream) run(eng offload.Engine, retry func(seq int, err error) bool) ([]byte, error) {
	var (
		state []byte
		off   int
		seq   int
	)
	for i := 0; i < st.requests(); i++ {
		req := &offload.HashRequest{Hash: st.h, State: state}
		if i < len(st.sizes) {
			req.Data = st.data[off : off+st.sizes[i]]
		} else {
			req.Data = st.tail()
			req.Final = true
		}
		var (
			res offload.HashResult
			err error
		)
		for attempt := 1; ; attempt++ {
			seq++
			res, err = waitHash(eng.Hash(context.Background(), req))
			if err == nil {
				break
			}
			if errors.Is(err, errNeverResolved) {
				return nil, fmt.Errorf("request %d of %d (call %d): %w", i+1, st.requests(), seq, err)
			}
			if attempt == maxAttempts || !retry(seq, err) {
				return nil, fmt.Errorf("request %d of %d (call %d): %w", i+1, st.requests(), seq, err)
			}
		}
		if req.Final {
			return res.Sum, nil
		}
		if res.State == nil {
			return nil, fmt.Errorf("request %d of %d: no state in the result", i+1, st.requests())
		}
		state = res.State
		off += st.sizes[i]
	}
	panic("unreachable")
}

// errNeverResolved reports a hash request that did not resolve in a minute.
var errNeverResolved = errors.New("conformance: hash request never resolved")

// waitHash waits for f, for a minute at most.
func waitHash(f *offload.Future[offload.HashResult]) (offload.HashResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := f.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		return v, fmt.Errorf("%w: %w", errNeverResolved, err)
	}
	return v, err
}

// hashStreams runs the streaming checks for a claimed hash algorithm.
func (s *suite) hashStreams(t *testing.T, a offload.Algorithm) {
	h := hashOfAlg[a]
	if block := h.New().BlockSize(); s.info.MaxInline < block {
		t.Fatalf("Info.MaxInline is %d, less than one %d-byte %v block", s.info.MaxInline, block, h)
	}
	t.Run("random_splits", func(t *testing.T) { s.hashRandomSplits(t, h) })
	t.Run("fault_every_position", func(t *testing.T) { s.hashFaultEveryPosition(t, h) })
}

// hashRandomSplits hashes random messages of several lengths, up to a few
// hundred KiB, cut into requests of random whole-block sizes up to
// Info.MaxInline, and compares each digest with the standard library's. A
// request failed by the run's injected fault is sent again.
func (s *suite) hashRandomSplits(t *testing.T, h crypto.Hash) {
	block := h.New().BlockSize()
	capacity := s.info.MaxInline
	lengths := []int{0, 1, block - 1, block, block + 1, 1000, 5*block + 3,
		capacity - 1, capacity, capacity + block + 1, 3*capacity/2 + 5, 300<<10 + 17}
	// The streams run at once, each one request at a time, so an engine
	// with latency costs one stream's time.
	errs := make([]error, len(lengths))
	var wg sync.WaitGroup
	for i, n := range lengths {
		n = min(n, 400<<10)
		seed := uint64(h)<<32 | uint64(i+1)
		wg.Go(func() {
			st := randomStream(h, n, capacity, seed)
			sum, err := st.run(s.Engine, func(_ int, err error) bool { return s.injected(err) })
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("%v, %d bytes in %d requests (seed %d): %w", h, n, st.requests(), seed, err)
			case !bytes.Equal(sum, hashOf(h, st.data)):
				errs[i] = fmt.Errorf("%v, %d bytes in %d requests of %v + %d (seed %d): digest %x, want %x",
					h, n, st.requests(), st.sizes, len(st.tail()), seed, sum, hashOf(h, st.data))
			}
		})
	}
	testwait.Group(t, &wg, fmt.Sprintf("%v streams of random splits", h))
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// noClose is an engine whose Close does nothing, so that a wrapper made
// around the suite's engine for one check can be closed without closing it.
type noClose struct{ offload.Engine }

func (noClose) Close() error { return nil }

// hashFaultEveryPosition cuts a message into a stream of about a dozen
// requests and, for each position k in turn, fails the k-th request with an
// injected fault (a fresh inject.Wrap around the engine for each k). The
// caller still holds the state from before the failed request, sends that
// request again, and the digest must come out right; only request k may
// have failed with the chosen fault.
func (s *suite) hashFaultEveryPosition(t *testing.T, h crypto.Hash) {
	block := h.New().BlockSize()
	seed := uint64(h)<<32 | 0xfa17
	rng, src := seededRand(seed)
	maxBlocks := min(3, s.info.MaxInline/block)
	st := hashStream{h: h}
	n := 0
	for range 11 {
		sz := (1 + rng.IntN(maxBlocks)) * block
		st.sizes = append(st.sizes, sz)
		n += sz
	}
	n += rng.IntN(block)
	st.data = make([]byte, n)
	src.Read(st.data)
	want := hashOf(h, st.data)
	// Each position has its own wrapper, and the streams run at once.
	errs := make([]error, st.requests()+1)
	var wg sync.WaitGroup
	for k := 1; k <= st.requests(); k++ {
		wg.Go(func() { errs[k] = s.faultAt(st, k, want) })
	}
	testwait.Group(t, &wg, fmt.Sprintf("%v streams with a fault each", h))
	for _, err := range errs {
		if err != nil {
			t.Errorf("%v (seed %d): %v", h, seed, err)
		}
	}
}

// faultAt runs st with a fault injected at its k-th request, retrying the
// failed request, and checks the digest and where the fault hit.
func (s *suite) faultAt(st hashStream, k int, want []byte) error {
	eng, err := inject.Wrap(noClose{s.Engine}, inject.Options{Faults: []inject.Fault{{
		If:  func(r inject.Request) bool { return r.Seq == uint64(k) },
		Err: errPosition,
	}}})
	if err != nil {
		return err
	}
	defer eng.Close()
	var failed []int // Hash calls that failed with errPosition
	sum, err := st.run(eng, func(seq int, err error) bool {
		switch {
		case errors.Is(err, errPosition):
			failed = append(failed, seq)
			return true
		case s.injected(err):
			return true
		}
		return false
	})
	switch {
	case err != nil:
		return fmt.Errorf("fault at request %d of %d: %w", k, st.requests(), err)
	case !bytes.Equal(sum, want):
		return fmt.Errorf("fault at request %d of %d: digest %x after the retry, want %x", k, st.requests(), sum, want)
	case len(failed) != 1 || failed[0] != k:
		return fmt.Errorf("fault at request %d of %d: the chosen fault hit calls %v", k, st.requests(), failed)
	}
	return nil
}
