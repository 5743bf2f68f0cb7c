package offload

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/testwait"
)

func TestStatsCounts(t *testing.T) {
	var s Stats
	var wg sync.WaitGroup
	const n = 64
	start := make(chan struct{})
	hold := make(chan struct{})
	var began sync.WaitGroup
	for i := range n {
		wg.Add(1)
		began.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := s.Start(OpSign)
			began.Done()
			<-hold
			var err error
			if i%4 == 0 {
				err = errors.New("fail")
			}
			s.Finish(OpSign, t0, err)
		}()
	}
	close(start)
	testwait.Group(t, &began, "64 operations to start")
	snap := s.Snapshot()
	if got := snap.Op(OpSign).InFlight; got != n {
		t.Fatalf("InFlight = %d with all started, want %d", got, n)
	}
	close(hold)
	testwait.Group(t, &wg, "64 operations to finish")
	o := s.Snapshot().Op(OpSign)
	if o.Submitted != n || o.Completed != n-n/4 || o.Failed != n/4 || o.InFlight != 0 || o.MaxInFlight != n {
		t.Fatalf("counters %+v", o)
	}
	if o.Op != OpSign {
		t.Fatalf("Op = %v", o.Op)
	}
	// Quantiles are bucket midpoints, so P99 may pass Max by up to 12.5%.
	if float64(o.Max)*1.125 < float64(o.P99) || o.P99 < o.P90 || o.P90 < o.P50 {
		t.Fatalf("quantiles out of order: %+v", o)
	}
	if other := s.Snapshot().Op(OpHash); other.Submitted != 0 {
		t.Fatalf("hash counted %+v", other)
	}
	str := s.Snapshot().String()
	if !strings.Contains(str, "sign") || strings.Contains(str, "hash") {
		t.Fatalf("String():\n%s", str)
	}
}

func TestStatsMaxInFlight(t *testing.T) {
	var s Stats
	a := s.Start(OpHash)
	b := s.Start(OpHash)
	s.Finish(OpHash, a, nil)
	c := s.Start(OpHash)
	s.Finish(OpHash, b, nil)
	s.Finish(OpHash, c, nil)
	if o := s.Snapshot().Op(OpHash); o.MaxInFlight != 2 || o.InFlight != 0 || o.Completed != 3 {
		t.Fatalf("%+v", o)
	}
}

func TestStatsQuantiles(t *testing.T) {
	within := func(got time.Duration, want float64) bool {
		return math.Abs(float64(got)-want) <= 0.125*want
	}
	tests := []struct {
		name          string
		values        []uint64
		p50, p90, p99 float64
	}{
		{"small exact", []uint64{1, 2, 3, 4, 5, 6, 7}, 4, 6, 6},
		{"one value", []uint64{1000}, 1000, 1000, 1000},
		{"microseconds", seq(1000, 100000, 1000), 50000, 90000, 99000},
		{"milliseconds", seq(1e6, 1e8, 1e6), 5e7, 9e7, 9.9e7},
		{"skewed", append(repeat(10_000, 98), 5e9, 5e9), 10_000, 10_000, 5e9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h [numBuckets]uint64
			for _, v := range tc.values {
				h[bucketOf(v)]++
			}
			total := uint64(len(tc.values))
			for _, q := range []struct {
				q    float64
				want float64
			}{{0.50, tc.p50}, {0.90, tc.p90}, {0.99, tc.p99}} {
				if got := quantile(&h, total, q.q); !within(got, q.want) {
					t.Errorf("q%.2f = %v, want %v ±12.5%%", q.q, got, time.Duration(q.want))
				}
				// The table holds the sample quantile sorted[floor(q*(n-1))].
				sorted := slices.Sorted(slices.Values(tc.values))
				if exact := float64(sorted[int(q.q*float64(len(sorted)-1))]); math.Abs(exact-q.want) > 0.02*exact {
					t.Errorf("table says q%.2f = %v, the sample has %v", q.q, q.want, exact)
				}
			}
		})
	}
	var empty [numBuckets]uint64
	if quantile(&empty, 0, 0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
}

func TestBucketBounds(t *testing.T) {
	// Every value maps to a bucket whose midpoint is within 12.5% of it, and
	// buckets grow with their values.
	prev := -1
	for v := uint64(0); v < 1<<20; v += 1 + v/64 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, b, prev)
		}
		prev = b
		mid := float64(bucketMid(b))
		if math.Abs(mid-float64(v)) > 0.125*float64(v) {
			t.Fatalf("value %d in bucket %d, midpoint %v", v, b, mid)
		}
	}
	if b := bucketOf(math.MaxUint64); b >= numBuckets {
		t.Fatalf("bucketOf(max) = %d, beyond %d", b, numBuckets)
	}
}

func seq(from, to, step uint64) []uint64 {
	var s []uint64
	for v := from; v <= to; v += step {
		s = append(s, v)
	}
	return s
}

func repeat(v uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = v
	}
	return s
}
