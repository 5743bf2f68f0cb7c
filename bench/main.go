// Command bench measures offcrypt against the best alternative in the same
// run: for each signature algorithm, the standard library (or circl) called
// directly against signer/ over the embedded software engine, with one caller
// and with GOMAXPROCS callers, and the cost of one future.
//
//	cd bench && go run .
//	cd bench && go run . -time 2s -reps 5 -only ECDSA
//
// Each cell runs for -time; the two sides alternate -reps times and the
// median of each is reported, so drift on a shared machine hits both alike.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

func main() {
	var cfg config
	flag.DurationVar(&cfg.dur, "time", 500*time.Millisecond, "how long each measurement runs")
	flag.IntVar(&cfg.reps, "reps", 3, "how many times each pair of measurements alternates")
	flag.StringVar(&cfg.only, "only", "", "run only algorithms whose name contains this")
	flag.Parse()
	if err := run(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	dur  time.Duration
	reps int
	only string
}

func run(w io.Writer, cfg config) error {
	cfg.reps = max(cfg.reps, 1)
	fmt.Fprintf(w, "offcrypt bench: %s %s/%s, GOMAXPROCS=%d, %v per cell, median of %d\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cfg.dur, cfg.reps)

	cases, cleanup, err := signCases()
	if err != nil {
		return err
	}
	defer cleanup()

	fmt.Fprintln(w, "| operation | callers | direct ops/s | offcrypt ops/s | ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, c := range cases {
		if cfg.only != "" && !strings.Contains(c.name, cfg.only) {
			continue
		}
		for _, callers := range []int{1, runtime.GOMAXPROCS(0)} {
			d, o, err := compare(c.direct, c.offcrypt, callers, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.3f |\n", c.name, callers, d, o, o/d)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| future overhead | ns/op | allocs/op |")
	fmt.Fprintln(w, "|---|---:|---:|")
	for _, f := range futureCases() {
		ns, allocs := f.measure()
		fmt.Fprintf(w, "| %s | %.0f | %d |\n", f.name, ns, allocs)
	}
	return nil
}
