package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/offcrypt/offcrypt/cmd/handshake-delay/experiment"
)

// runDelay runs the delayed-engine experiment (cmd/handshake-delay/experiment): a
// TLS server whose soft engine adds cfg.delay to every private-key
// operation, cfg.n handshakes at once with the engine admitting all of them
// ("async"), then cfg.stackedN handshakes with the engine admitting one at a
// time ("stacked").
func runDelay(w io.Writer, cfg config) error {
	const alg = "ecdsa"
	priv, err := experiment.Key(alg)
	if err != nil {
		return err
	}
	runs := []experiment.Config{{Mode: "async", Alg: alg, Delay: cfg.delay, N: cfg.n, MaxInFlight: cfg.n}}
	if cfg.stackedN > 0 {
		runs = append(runs, experiment.Config{Mode: "stacked", Alg: alg, Delay: cfg.delay, N: cfg.stackedN, MaxInFlight: 1})
	}
	var results []experiment.Result
	for _, c := range runs {
		fmt.Fprintf(os.Stderr, "delay: %s run, %d handshakes, engine limit %d, %v per signature ...\n", c.Mode, c.N, c.MaxInFlight, c.Delay)
		r, err := experiment.Run(context.Background(), c, priv)
		if err != nil {
			return err
		}
		if err := r.Check(); err != nil {
			return err
		}
		results = append(results, r)
		cfg.charts.addDelay(r)
	}

	fmt.Fprintf(w, "### Delayed engine: TLS 1.3 handshakes with %v added to every signature (ECDSA P-256 in soft)\n", cfg.delay)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mode | engine limit | handshakes | ok | wall | wall / delay | wall per handshake | engine max in flight | p50 handshake | max handshake |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %v | %.2f | %v | %d | %v | %v |\n", r.Mode, r.MaxInFlight, r.N, r.OK,
			r.Wall.Round(time.Millisecond), float64(r.Wall)/float64(max(cfg.delay, 1)),
			(r.Wall / time.Duration(r.N)).Round(time.Millisecond), r.PeakFlight,
			r.Handshake50.Round(time.Millisecond), r.HandshakeMx.Round(time.Millisecond))
	}
	if len(results) == 2 {
		a, s := results[0], results[1]
		perA := float64(a.Wall) / float64(a.N)
		perS := float64(s.Wall) / float64(s.N)
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Wall time per handshake, stacked / async: %.1f (both measured here: stacked ran %d handshakes, async %d).\n", perS/perA, s.N, a.N)
		fmt.Fprintf(w, "Wall time of the whole batch, stacked / async: %.2f.\n", float64(s.Wall)/float64(a.Wall))
	}
	return nil
}
