// Command bench measures offcrypt against the best alternative in the same
// run. Each suite prints one markdown table:
//
//   - sign: for each signature algorithm, the standard library (or circl)
//     called directly against signer/ over the embedded software engine,
//     with one caller and with GOMAXPROCS callers;
//   - future: the cost of one future and of the worker hand-off;
//   - hash: SHA-256 and SHA-512 over hasher/ on the soft engine (default
//     payload cap and wolfHSM's 1,280-byte message) against crypto/sha256
//     and crypto/sha512;
//   - cipher: AES-128-GCM Seal over cipher/ against crypto/cipher;
//   - tls: full TLS 1.3 handshakes per second over loopback, key in the soft
//     engine against the same key held by crypto/tls;
//   - delay (opt-in): the delayed-engine handshake experiment, async against
//     stacked;
//   - pkcs11 (opt-in, needs SoftHSM2 and OpenSC's pkcs11-tool): ECDSA P-256
//     and RSA-2048 signatures on one SoftHSM2 token with -sessions sessions
//     on every side: the token's ceiling (the CPUs S sessions can keep busy
//     at the CPU cost of one goroutine per session signing in a loop), a raw
//     miekg/pkcs11 loop whose callers share the sessions, offcrypt and
//     crypto11; each side's CPU time per signature and the CPUs the process
//     had while it ran; latency quantiles; and the OS threads offcrypt and
//     crypto11 each create for 10,000 concurrent callers (each in a child
//     process).
//   - qat (opt-in): QuickAssist, tier 1 (the modelled card): ECDSA P-256
//     throughput by concurrency against the card's modelled capacity, poll
//     interval and batching against p50/p99 latency, the poller busy and
//     idle, and AES-GCM through the threshold wrapper (offload/compose)
//     against the software engine alone.
//
// Usage:
//
//	cd bench && go run .
//	cd bench && go run . -time 2s -reps 5 -suite sign -only ECDSA
//	cd bench && go run . -suite delay -delay 1s
//	cd bench && go run . -suite pkcs11
//	cd bench && go run . -suite qat
//	cd bench && go run . -suite sign,delay -sign-callers 1,2,4,8 -chart ../docs/charts
//
// With -chart DIR the run also writes SVG charts into DIR: for each engine
// measured (the sign suite's soft, the pkcs11 suite's SoftHSM2), ops/s
// against callers, one panel per operation, with the references measured in
// the same run beside offcrypt; and, for the delay suite, the time of every
// handshake, async against stacked.
//
// Each cell runs for -time; the sides alternate -reps times and the median
// of each is reported, so drift on a shared machine hits every side alike.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// defaultSuites are the suites run without -suite: the fast ones that need
// nothing outside Go.
const defaultSuites = "sign,future,hash,cipher,tls"

// suites maps each suite's name to the function that prints its table, in
// the order they run.
var suites = []struct {
	name string
	run  func(io.Writer, config) error
}{
	{"sign", runSign},
	{"future", runFuture},
	{"hash", runHash},
	{"cipher", runCipher},
	{"tls", runTLS},
	{"delay", runDelay},
	{"pkcs11", runPKCS11},
	{"tpm", runTPM},
	{"qat", runQAT},
}

func main() {
	cfg := defaultConfig()
	var suiteList, callers, signCallers, chartDir string
	flag.StringVar(&suiteList, "suite", defaultSuites, "comma-separated suites: sign, future, hash, cipher, tls, delay, pkcs11, tpm, qat")
	flag.DurationVar(&cfg.dur, "time", cfg.dur, "how long each measurement runs")
	flag.IntVar(&cfg.reps, "reps", cfg.reps, "how many times each set of measurements alternates")
	flag.StringVar(&cfg.only, "only", "", "sign suite: run only algorithms whose name contains this")
	flag.DurationVar(&cfg.delay, "delay", cfg.delay, "delay suite: delay the engine adds to every private-key operation")
	flag.IntVar(&cfg.n, "n", cfg.n, "delay suite: concurrent handshakes in the async run")
	flag.IntVar(&cfg.stackedN, "stacked-n", cfg.stackedN, "delay suite: handshakes in the stacked run (about stacked-n × delay); 0 skips it")
	flag.IntVar(&cfg.sessions, "sessions", cfg.sessions, "pkcs11 suite: sessions on each side (the engine's MaxInFlight)")
	flag.StringVar(&callers, "callers", "1,8,64", "pkcs11 suite: comma-separated numbers of concurrent callers")
	flag.StringVar(&signCallers, "sign-callers", "", "sign suite: comma-separated numbers of concurrent callers (default 1 and GOMAXPROCS)")
	flag.StringVar(&chartDir, "chart", "", "also write SVG charts of the results into this directory")
	flag.IntVar(&cfg.threadCallers, "thread-callers", cfg.threadCallers, "pkcs11 suite: concurrent callers in the OS thread measurement; 0 skips it")
	flag.StringVar(&cfg.threadChild, "threads-child", "", "internal: run one side's thread measurement in this process and print it")
	flag.Parse()

	if cfg.threadChild != "" { // re-executed by the pkcs11 suite
		if err := threadsChild(os.Stdout, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if cfg.suites, err = parseSuites(suiteList); err == nil {
		cfg.callers, err = parseInts(callers)
	}
	if err == nil && signCallers != "" {
		cfg.signCallers, err = parseInts(signCallers)
	}
	if err == nil && chartDir != "" {
		cfg.charts = new(charts)
	}
	if err == nil {
		err = run(os.Stdout, cfg)
	}
	if err == nil && cfg.charts != nil {
		var files []string
		files, err = cfg.charts.write(chartDir)
		for _, f := range files {
			fmt.Fprintf(os.Stderr, "bench: wrote %s\n", filepath.Join(chartDir, f))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	suites []string
	dur    time.Duration
	reps   int
	only   string

	delay    time.Duration // delay suite
	n        int
	stackedN int

	signCallers []int   // sign suite: callers per row; nil means 1 and GOMAXPROCS
	charts      *charts // nil unless -chart

	sessions      int   // pkcs11 suite
	callers       []int // pkcs11 suite: callers per row
	threadCallers int   // pkcs11 suite: 0 skips the thread measurement
	threadChild   string
}

func defaultConfig() config {
	return config{
		suites:        strings.Split(defaultSuites, ","),
		dur:           500 * time.Millisecond,
		reps:          3,
		delay:         5 * time.Second,
		n:             100,
		stackedN:      5,
		sessions:      2,
		callers:       []int{1, 8, 64},
		threadCallers: 10000,
	}
}

func parseSuites(s string) ([]string, error) {
	var out []string
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !knownSuite(name) {
			return nil, fmt.Errorf("unknown suite %q (want some of sign, future, hash, cipher, tls, delay, pkcs11, tpm, qat)", name)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no suite given")
	}
	return out, nil
}

func knownSuite(name string) bool {
	for _, s := range suites {
		if s.name == name {
			return true
		}
	}
	return false
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q in a list", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(w io.Writer, cfg config) error {
	cfg.reps = max(cfg.reps, 1)
	fmt.Fprintf(w, "offcrypt bench: %s %s/%s, GOMAXPROCS=%d, %v per cell, median of %d\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cfg.dur, cfg.reps)
	for _, s := range suites {
		if !slices.Contains(cfg.suites, s.name) {
			continue
		}
		fmt.Fprintln(w)
		if err := s.run(w, cfg); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func runSign(w io.Writer, cfg config) error {
	cases, cleanup, err := signCases()
	if err != nil {
		return err
	}
	defer cleanup()

	fmt.Fprintln(w, "### Signatures: signer/ over soft against the standard library (or circl) direct")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| operation | callers | direct ops/s | offcrypt ops/s | ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, c := range cases {
		if cfg.only != "" && !strings.Contains(c.name, cfg.only) {
			continue
		}
		callerList := cfg.signCallers
		if len(callerList) == 0 {
			callerList = []int{1, runtime.GOMAXPROCS(0)}
		}
		for _, callers := range callerList {
			d, o, err := compare(c.direct, c.offcrypt, callers, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.3f |\n", c.name, callers, d, o, o/d)
			const title = "Signatures: signer/ over the soft engine against the standard library (or circl) direct"
			cfg.charts.addRate("soft", title, c.name, "direct", true, callers, d)
			cfg.charts.addRate("soft", title, c.name, "offcrypt", false, callers, o)
		}
	}
	return nil
}

func runFuture(w io.Writer, _ config) error {
	fmt.Fprintln(w, "### The asynchronous layer's own cost")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| future overhead | ns/op | allocs/op |")
	fmt.Fprintln(w, "|---|---:|---:|")
	for _, f := range futureCases() {
		ns, allocs := f.measure()
		fmt.Fprintf(w, "| %s | %.0f | %d |\n", f.name, ns, allocs)
	}
	return nil
}
