//go:build cgo

package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestTokenCeiling(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	ms := time.Millisecond
	for _, c := range []struct {
		name     string
		results  []result
		sessions int
		want     float64
	}{
		{"no results", nil, 2, 0},
		{"CPU time unknown: the highest rate", []result{{rate: 900}, {rate: 700}}, 2, 900},
		{"one session: one CPU at the cheapest signature", []result{{rate: 900, cpuPerOp: 2 * ms}, {rate: 800, cpuPerOp: ms}}, 1, 1000},
		{"more sessions than CPUs", []result{{rate: 900, cpuPerOp: ms}}, procs + 3, float64(procs) * 1000},
		{"a result without CPU time is skipped", []result{{rate: 900}, {rate: 800, cpuPerOp: ms}}, 1, 1000},
		{"a side faster than the CPU bound", []result{{rate: 5000, cpuPerOp: ms}}, 1, 5000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := tokenCeiling(c.results, c.sessions); got != c.want {
				t.Errorf("tokenCeiling(%+v, %d) = %v, want %v", c.results, c.sessions, got, c.want)
			}
		})
	}
}

// BenchmarkOwnerLoop runs the pkcs11 suite's owner loop (ECDSA P-256, one
// goroutine per session, each locked to its OS thread) and reports, from
// the kernel's per-thread scheduler statistics, the share of each thread's
// wall time it spent on a CPU, waiting for a CPU and blocked (in a lock or
// I/O). A token whose sessions serialise shows up as blocked time; one that
// is bound by CPU shows none, and on a shared machine waits for a CPU
// instead. Linux only.
//
//	go test -run '^$' -bench OwnerLoop -benchtime 20000x
func BenchmarkOwnerLoop(b *testing.B) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		b.Skip("needs Linux's /proc/<pid>/task/<tid>/schedstat")
	}
	cleanup, err := setupSoftHSM()
	if err != nil {
		b.Skip(err)
	}
	defer cleanup()
	for _, sessions := range []int{1, 2} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			raw, err := openRaw(sessions)
			if err != nil {
				b.Fatal(err)
			}
			defer raw.close()
			k := p11Keys()[0]
			obj, err := raw.find(k.label)
			if err != nil {
				b.Fatal(err)
			}
			var (
				mu                        sync.Mutex
				wall, onCPU, queued, sigs time.Duration
				wg                        sync.WaitGroup
			)
			b.ResetTimer()
			for i, sh := range raw.all {
				n := b.N / sessions
				if i < b.N%sessions {
					n++
				}
				wg.Go(func() {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					run0, wait0, err := threadSched()
					if err != nil {
						b.Error(err)
						return
					}
					start := time.Now()
					for range n {
						if err := raw.signOn(sh, obj, k.mech, k.data); err != nil {
							b.Error(err)
							return
						}
					}
					w := time.Since(start)
					run1, wait1, err := threadSched()
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					wall, onCPU, queued, sigs = wall+w, onCPU+run1-run0, queued+wait1-wait0, sigs+time.Duration(n)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			if wall == 0 || sigs == 0 {
				return
			}
			pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(wall) }
			b.ReportMetric(pct(onCPU), "%on-cpu")
			b.ReportMetric(pct(queued), "%waiting-for-cpu")
			b.ReportMetric(pct(wall-onCPU-queued), "%blocked")
			b.ReportMetric(float64(onCPU/sigs)/1e3, "cpu-µs/sig")
		})
	}
}

// threadSched returns the calling thread's time on a CPU and waiting on a
// run queue, from /proc/self/task/<tid>/schedstat.
func threadSched() (run, wait time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", syscall.Gettid()))
	if err != nil {
		return 0, 0, err
	}
	var r, w int64
	if _, err := fmt.Sscan(string(b), &r, &w); err != nil {
		return 0, 0, fmt.Errorf("schedstat %q: %w", b, err)
	}
	return time.Duration(r), time.Duration(w), nil
}
