// Command handshake-delay runs the delayed-engine experiment from the
// Traffic Server asynchronous-crypto talk: a TLS server on loopback whose
// key lives in offcrypt's software engine, which adds -delay to every
// private-key operation, and -n Go clients that handshake with it at once.
//
//	go run ./cmd/handshake-delay                      # 100 handshakes, 5 s delay, ECDSA P-256
//	go run ./cmd/handshake-delay -delay 1s -alg rsa
//	go run ./cmd/handshake-delay -stacked-n 100       # the full stacked baseline: about 100 × delay
//
// Two runs are printed. "async" lets the engine hold all n operations at
// once, as a server whose handshakes wait for the device without blocking
// one another. "stacked" limits the engine to one operation at a time, the
// baseline in which each handshake's crypto blocks the next. A stacked run
// of n handshakes takes about n × delay, so by default it runs only
// -stacked-n handshakes; every figure printed is measured, for the number
// of handshakes shown in its row.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/offcrypt/offcrypt/cmd/handshake-delay/experiment"
)

func main() {
	delay := flag.Duration("delay", 5*time.Second, "delay the engine adds to every private-key operation")
	n := flag.Int("n", 100, "concurrent handshakes in the async run")
	stackedN := flag.Int("stacked-n", 5, "handshakes in the stacked run (it takes about stacked-n × delay); 0 skips it")
	alg := flag.String("alg", "ecdsa", "server key: ecdsa (P-256) or rsa (2048 bits)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *delay, *n, *stackedN, *alg); err != nil {
		fmt.Fprintln(os.Stderr, "handshake-delay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, delay time.Duration, n, stackedN int, alg string) error {
	priv, err := experiment.Key(alg)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "handshake-delay: %s, GOMAXPROCS=%d, TLS 1.3, %s key in the soft engine, %v per private-key operation\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), alg, delay)
	runs := []experiment.Config{{Mode: "async", Alg: alg, Delay: delay, N: n, MaxInFlight: n}}
	if stackedN > 0 {
		runs = append(runs, experiment.Config{Mode: "stacked", Alg: alg, Delay: delay, N: stackedN, MaxInFlight: 1})
	}
	var results []experiment.Result
	for _, c := range runs {
		fmt.Fprintf(os.Stderr, "running %s: %d handshakes, engine limit %d ...\n", c.Mode, c.N, c.MaxInFlight)
		r, err := experiment.Run(ctx, c, priv)
		if err != nil {
			return err
		}
		results = append(results, r)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tengine limit\thandshakes\tok\twall\twall/delay\tengine max in flight\tp50 handshake\tmax handshake\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%v\t%.2f\t%d\t%v\t%v\t\n", r.Mode, r.MaxInFlight, r.N, r.OK,
			r.Wall.Round(time.Millisecond), ratio(r.Wall, delay), r.PeakFlight,
			r.Handshake50.Round(time.Millisecond), r.HandshakeMx.Round(time.Millisecond))
	}
	tw.Flush()

	if len(results) == 2 {
		a, s := results[0], results[1]
		fmt.Fprintf(w, "\nratio stacked/async wall time: %.2f (measured: stacked ran %d handshakes, async %d)\n",
			float64(s.Wall)/float64(a.Wall), s.N, a.N)
		if s.N != a.N {
			fmt.Fprintf(w, "the stacked run is capped at -stacked-n %d; run with -stacked-n %d for the full baseline\n", s.N, a.N)
		}
	}
	for _, r := range results {
		if err := r.Check(); err != nil {
			return err
		}
	}
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
