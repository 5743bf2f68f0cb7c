package offload

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// Op names a kind of operation.
type Op uint8

// The kinds of operation an engine performs.
const (
	OpSign Op = iota
	OpDecrypt
	OpHash
	OpCipher
	OpRandom
	numOps
)

// Ops lists every kind of operation, in order.
var Ops = [...]Op{OpSign, OpDecrypt, OpHash, OpCipher, OpRandom}

var opNames = [...]string{"sign", "decrypt", "hash", "cipher", "random"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Stats counts an engine's operations: per kind, how many were submitted,
// completed and failed, how many are in flight and the most ever in flight,
// and a latency histogram from submission to resolution. It is lock-free and
// safe for concurrent use; the zero value is ready. Engines embed one and
// expose Snapshot.
//
// Apart from the in-flight count, which must be one number to have a
// maximum, the counters are spread over a few shards chosen at random per
// update, so goroutines on different CPUs recording at once seldom write
// the same cache line.
type Stats struct {
	ops [numOps]opCounters
}

// statShards is the number of shards per kind of operation (a power of two).
const statShards = 4

type opCounters struct {
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	_           [48]byte // keep the shards off the in-flight count's cache line
	shards      [statShards]statShard
}

type statShard struct {
	submitted  atomic.Uint64
	completed  atomic.Uint64
	failed     atomic.Uint64
	fallbacks  atomic.Uint64
	maxLatency atomic.Int64
	hist       [numBuckets]atomic.Uint64
	_          [24]byte // keep the next shard's counters off this cache line
}

func (c *opCounters) shard() *statShard {
	return &c.shards[rand.Uint32()&(statShards-1)]
}

// Start records that an operation of kind op was admitted and returns the
// time to hand to Finish: a monotonic reading, not meant for display.
func (s *Stats) Start(op Op) time.Time {
	c := &s.ops[op]
	c.shard().submitted.Add(1)
	n := c.inFlight.Add(1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return now()
}

// epoch is the reading now counts from.
var epoch = time.Now()

// now returns the monotonic time as a time.Time for Finish, with one
// reading of the monotonic clock: time.Now reads the wall clock too, which
// costs as much again (about 50 to 90 ns each on a loaded virtual machine)
// and which a latency does not need. Its wall-clock part drifts from the
// real one when the system clock is set; only its monotonic part is used.
func now() time.Time { return epoch.Add(time.Since(epoch)) }

// Finish records the end of an operation begun at start. An error counts as
// a failure and its latency is not recorded.
func (s *Stats) Finish(op Op, start time.Time, err error) {
	c := &s.ops[op]
	c.inFlight.Add(-1)
	sh := c.shard()
	if err != nil {
		sh.failed.Add(1)
		return
	}
	sh.completed.Add(1)
	d := int64(time.Since(start))
	if d < 0 {
		d = 0
	}
	sh.hist[bucketOf(uint64(d))].Add(1)
	for {
		m := sh.maxLatency.Load()
		if d <= m || sh.maxLatency.CompareAndSwap(m, d) {
			break
		}
	}
}

// Fallback records that an operation of kind op, which a composed engine
// had sent to its first engine, was sent to its second after the first
// failed (offload/compose). It is counted beside, not instead of, the
// operation's Start and Finish.
func (s *Stats) Fallback(op Op) { s.ops[op].shard().fallbacks.Add(1) }

// Snapshot returns the counters as they are now. Each field is read
// atomically; the set is not one atomic cut, which counters of independent
// events do not need.
func (s *Stats) Snapshot() Snapshot {
	var snap Snapshot
	for _, op := range Ops {
		c := &s.ops[op]
		o := &snap.Ops[op]
		o.Op = op
		o.InFlight = c.inFlight.Load()
		o.MaxInFlight = c.maxInFlight.Load()
		var h [numBuckets]uint64
		var total uint64
		for i := range c.shards {
			sh := &c.shards[i]
			o.Submitted += sh.submitted.Load()
			o.Completed += sh.completed.Load()
			o.Failed += sh.failed.Load()
			o.Fallbacks += sh.fallbacks.Load()
			o.Max = max(o.Max, time.Duration(sh.maxLatency.Load()))
			for b := range h {
				n := sh.hist[b].Load()
				h[b] += n
				total += n
			}
		}
		o.P50 = quantile(&h, total, 0.50)
		o.P90 = quantile(&h, total, 0.90)
		o.P99 = quantile(&h, total, 0.99)
	}
	return snap
}

// A Snapshot holds an engine's counters at one moment, per kind of operation.
type Snapshot struct {
	Ops [numOps]OpStats // indexed by Op
}

// Op returns the counters of one kind of operation.
func (s Snapshot) Op(op Op) OpStats { return s.Ops[op] }

// String formats the kinds that saw any traffic as a small table.
func (s Snapshot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %10s %10s %8s %8s %8s %10s %10s %10s %10s\n",
		"op", "submitted", "completed", "failed", "inflight", "maxfly", "p50", "p90", "p99", "max")
	for _, o := range s.Ops {
		if o.Submitted == 0 {
			continue
		}
		fmt.Fprintf(&b, "%-8s %10d %10d %8d %8d %8d %10v %10v %10v %10v\n",
			o.Op, o.Submitted, o.Completed, o.Failed, o.InFlight, o.MaxInFlight, o.P50, o.P90, o.P99, o.Max)
	}
	return b.String()
}

// OpStats are the counters of one kind of operation. Latency quantiles come
// from a log-linear histogram and are exact to within 12.5%.
type OpStats struct {
	Op          Op
	Submitted   uint64 // admitted to the engine
	Completed   uint64 // resolved without error
	Failed      uint64 // resolved with an error, cancellation included
	InFlight    int64  // admitted and not yet finished
	MaxInFlight int64  // the most ever in flight at once
	// Fallbacks counts the operations a composed engine sent to its
	// second engine after its first failed with a device error
	// (offload/compose); zero for every other engine.
	Fallbacks uint64
	P50       time.Duration
	P90       time.Duration
	P99       time.Duration
	Max       time.Duration
}

// The histogram: values below 8 ns have a bucket each; above, each power of
// two is split into 8 buckets by the three bits after the leading one.
const numBuckets = 8 + 61*8

func bucketOf(v uint64) int {
	if v < 8 {
		return int(v)
	}
	n := bits.Len64(v) // >= 4
	shift := n - 4
	mant := int(v>>shift) & 7
	return 8 + shift*8 + mant
}

// bucketMid returns a representative value for bucket i: its midpoint.
func bucketMid(i int) uint64 {
	if i < 8 {
		return uint64(i)
	}
	k := i - 8
	shift := k / 8
	mant := uint64(k % 8)
	lo := (8 + mant) << shift
	return lo + (uint64(1)<<shift)/2
}

func quantile(h *[numBuckets]uint64, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, n := range h {
		seen += n
		if seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return 0
}
