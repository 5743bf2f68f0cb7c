package main

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// isolation is how far apart, in bytes, memory written by different callers
// is kept: two 64-byte cache lines, because the CPUs these figures come from
// fetch lines in adjacent pairs.
const isolation = 128

// callerBuf returns a slice of n zero bytes that shares no cache line (nor
// adjacent line) with any other allocation. Callers that write their own
// buffer on every op (a reused dst) must not write lines another caller
// writes: two 80-byte buffers allocated one after the other sit 80 bytes
// apart, share a line, and that line then bounces between the CPUs on
// every op, which halved the rate of a 64-byte AES-GCM Seal at 2 callers.
func callerBuf(n int) []byte {
	b := make([]byte, isolation+n+isolation)
	return b[isolation : isolation+n : isolation+n]
}

// callerVar returns a pointer to a zero T that shares no cache line (nor
// adjacent line) with any other allocation: per-caller state an op writes
// on every call (a latency slice's header) goes here.
func callerVar[T any]() *T {
	v := new(struct {
		_ [isolation]byte
		v T
		_ [isolation]byte
	})
	return &v.v
}

// A cell is one measurement of one side: its rate and the CPU time the
// whole process used meanwhile.
type cell struct {
	rate  float64       // ops per second
	ops   int64         // ops done
	cpu   time.Duration // process CPU time, user and system; 0 where unknown
	cores float64       // cpu over wall time: how many CPUs the process had
}

// cpuPerOp is the process CPU time per op, 0 where unknown.
func (c cell) cpuPerOp() time.Duration {
	if c.ops == 0 {
		return 0
	}
	return c.cpu / time.Duration(c.ops)
}

// opsPerSecondEach runs callers goroutines for d and measures them, with one
// op per caller: newOp(i) is called once, before the clock starts, for
// caller i, so each caller can own its buffers (a reused dst, a latency
// slice). With more than one caller, whatever an op writes on every call
// must be its caller's own and come from callerBuf or callerVar, and a
// closure must not reassign a variable it captures (the variable would move
// to the heap, next to the other callers' copies): the harness's own work
// per op is a call through a func value, one atomic load of a flag no one
// writes until the end, and an increment of a counter on the caller's
// stack, added to the total once.
func opsPerSecondEach(newOp func(caller int) func() error, callers int, d time.Duration) (cell, error) {
	var (
		stop  atomic.Bool
		count atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	ops := make([]func() error, callers)
	for i := range ops {
		ops[i] = newOp(i)
	}
	cpu0 := processCPU()
	start := time.Now()
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			for !stop.Load() {
				if err := op(); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					stop.Store(true)
					break
				}
				n++
			}
			count.Add(n)
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	c := cell{ops: count.Load()}
	c.rate = float64(c.ops) / elapsed.Seconds()
	if cpu0 > 0 {
		c.cpu = processCPU() - cpu0
		c.cores = c.cpu.Seconds() / elapsed.Seconds()
	}
	return c, first
}

// compare alternates a and b cfg.reps times and returns the median rates.
func compare(a, b func() error, callers int, cfg config) (float64, float64, error) {
	r, err := compareEach([]func(int) func() error{shared(a), shared(b)}, callers, cfg)
	if err != nil {
		return 0, 0, err
	}
	return r[0], r[1], nil
}

// compareEach measures every side cfg.reps times, rotating which side goes
// first in each repetition so drift on a shared machine hits all alike, and
// returns each side's median rate.
func compareEach(sides []func(caller int) func() error, callers int, cfg config) ([]float64, error) {
	n := make([]int, len(sides))
	for i := range n {
		n[i] = callers
	}
	m, err := measureSides(sides, n, cfg)
	if err != nil {
		return nil, err
	}
	rates := make([]float64, len(m))
	for i := range m {
		rates[i] = m[i].rate
	}
	return rates, nil
}

// measureSides is compareEach with a number of callers per side, and it
// returns, for each side, the median over the repetitions of the rate, of
// the CPU time per op and of the CPUs the process had.
func measureSides(sides []func(caller int) func() error, callers []int, cfg config) ([]result, error) {
	cells := make([][]cell, len(sides))
	for i := range max(cfg.reps, 1) {
		for j := range sides {
			k := (i + j) % len(sides)
			c, err := opsPerSecondEach(sides[k], callers[k], cfg.dur)
			if err != nil {
				return nil, err
			}
			cells[k] = append(cells[k], c)
		}
	}
	out := make([]result, len(sides))
	for k, cs := range cells {
		var rate, cpuPerOp, cores []float64
		for _, c := range cs {
			rate = append(rate, c.rate)
			cpuPerOp = append(cpuPerOp, float64(c.cpuPerOp()))
			cores = append(cores, c.cores)
		}
		out[k] = result{rate: median(rate), cpuPerOp: time.Duration(median(cpuPerOp)), cores: median(cores)}
	}
	return out, nil
}

// A result is one side's medians over the repetitions, each taken on its
// own: the rate, the process CPU time per op, and the CPUs the process had
// (0 where the CPU time is unknown).
type result struct {
	rate     float64
	cpuPerOp time.Duration
	cores    float64
}

// coresUsed formats the CPUs the process had while a side ran, "n/a" where
// unknown.
func coresUsed(r result) string {
	if r.cores <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", r.cores)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method; 0 for no values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// harnessCost returns the harness's own time per op, in ns, with callers
// callers each running an op that does nothing: the median over cfg.reps
// measurements of cfg.dur.
func harnessCost(callers int, cfg config) (float64, error) {
	r, err := compareEach([]func(int) func() error{shared(func() error { return nil })}, callers, cfg)
	if err != nil {
		return 0, err
	}
	return 1e9 * float64(callers) / r[0], nil
}

// shared makes a per-caller factory that hands every caller the same op.
func shared(op func() error) func(caller int) func() error {
	return func(int) func() error { return op }
}
