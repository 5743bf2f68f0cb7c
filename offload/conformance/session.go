package conformance

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
)

// hashSessions checks a claimed hash on an engine that keeps hash state on
// the device: random messages cut into Updates of random sizes (not block
// aligned, up to Info.MaxInline) must hash as the standard library does;
// after Final the session refuses more; a session closed half way leaves
// the engine able to hash again.
func (s *suite) hashSessions(t *testing.T, h crypto.Hash) {
	capacity := s.info.MaxInline
	block := h.New().BlockSize()
	lengths := []int{0, 1, block - 1, block + 1, 1000, capacity, capacity + block + 1, 3*capacity/2 + 5, 100<<10 + 17}
	errs := make([]error, len(lengths))
	var wg sync.WaitGroup
	for i, n := range lengths {
		seed := uint64(h)<<32 | uint64(i+1) | 0x5e<<24
		wg.Go(func() { errs[i] = s.sessionStream(h, n, seed) })
	}
	testwait.Group(t, &wg, fmt.Sprintf("%v hash sessions", h))
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Closed half way, then a whole stream again.
	hs, err := s.sessions.HashSession(ctx, h)
	if err != nil {
		t.Fatalf("HashSession(%v): %v", h, err)
	}
	if _, err := hs.Update(ctx, []byte("abandoned")).Wait(ctx); err != nil {
		t.Errorf("Update: %v", err)
	}
	if err := hs.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := hs.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.sessionStream(h, 2*block+3, uint64(h)); err != nil {
		t.Errorf("after a closed session: %v", err)
	}
}

// sessionStream hashes n random bytes (from seed) through one session, in
// Updates of random sizes up to Info.MaxInline, and checks the digest and
// that the finished session refuses an Update.
func (s *suite) sessionStream(h crypto.Hash, n int, seed uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rng, src := seededRand(seed)
	data := make([]byte, n)
	src.Read(data)
	hs, err := s.sessions.HashSession(ctx, h)
	if err != nil {
		return fmt.Errorf("HashSession(%v): %w", h, err)
	}
	defer hs.Close()
	var sizes []int
	for off := 0; off < n; {
		k := min(n-off, rng.IntN(s.info.MaxInline+1))
		if rng.IntN(2) == 0 {
			k = min(n-off, rng.IntN(200))
		}
		sizes = append(sizes, k)
		if _, err := hs.Update(ctx, data[off:off+k]).Wait(ctx); err != nil {
			return fmt.Errorf("%v, %d bytes (seed %d): Update %d: %w", h, n, seed, len(sizes), err)
		}
		off += k
	}
	sum, err := hs.Final(ctx).Wait(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%v, %d bytes (seed %d): Final: %w", h, n, seed, err)
	case !bytes.Equal(sum, hashOf(h, data)):
		return fmt.Errorf("%v, %d bytes in updates of %v (seed %d): digest %x, want %x", h, n, sizes, seed, sum, hashOf(h, data))
	}
	if _, err := hs.Update(ctx, []byte("more")).Wait(ctx); err == nil {
		return fmt.Errorf("%v: Update after Final succeeded", h)
	}
	return nil
}
