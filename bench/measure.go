package main

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// opsPerSecond runs op from callers goroutines for d and returns the rate.
// The first error stops the run and is returned.
func opsPerSecond(op func() error, callers int, d time.Duration) (float64, error) {
	var (
		stop  atomic.Bool
		count atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	start := time.Now()
	for range callers {
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
	return float64(count.Load()) / elapsed.Seconds(), first
}

// compare alternates a and b cfg.reps times and returns the median rates.
func compare(a, b func() error, callers int, cfg config) (float64, float64, error) {
	var ra, rb []float64
	for i := range cfg.reps {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		r1, err := opsPerSecond(first, callers, cfg.dur)
		if err != nil {
			return 0, 0, err
		}
		r2, err := opsPerSecond(second, callers, cfg.dur)
		if err != nil {
			return 0, 0, err
		}
		if i%2 == 1 {
			r1, r2 = r2, r1
		}
		ra = append(ra, r1)
		rb = append(rb, r2)
	}
	return median(ra), median(rb), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
