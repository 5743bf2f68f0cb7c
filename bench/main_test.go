package main

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/offcrypt/offcrypt/internal/devicetest"
)

// quick is a configuration that runs every measurement briefly.
func quick(suites ...string) config {
	cfg := defaultConfig()
	cfg.suites = suites
	cfg.dur = 20 * time.Millisecond
	cfg.reps = 1
	return cfg
}

// TestSuites runs each default suite briefly: every case must produce a
// result through the engine (the suites check results against the standard
// library before timing), and every row must be printed.
func TestSuites(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark case briefly")
	}
	for _, c := range []struct {
		suite string
		only  string
		want  []string
	}{
		{"sign", "Ed25519", []string{"| Ed25519 sign | 1 |", "| Ed25519 sign | "}},
		{"future", "", []string{"| future alone", "| Ed25519 SignAsync+Wait"}},
		{"hash", "", []string{"| SHA-256 | 65536 (default) |", "| SHA-256 | 1280 |", "| SHA-512 | 65536 (default) |", "| SHA-512 | 1280 |"}},
		{"cipher", "", []string{"| 16 KiB | 1 |", "| 64 B | 1 |", "empty op: "}},
		{"tls", "", []string{"| ECDSA P-256 |", "| RSA-2048 |"}},
	} {
		t.Run(c.suite, func(t *testing.T) {
			cfg := quick(c.suite)
			cfg.only = c.only
			var out bytes.Buffer
			if err := run(&out, cfg); err != nil {
				t.Fatal(err)
			}
			for _, want := range c.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if n := strings.Count(out.String(), "\n|---"); n != 1 {
				t.Errorf("want one table, found %d:\n%s", n, out.String())
			}
		})
	}
}

// TestDelay runs the delayed-engine experiment small; it checks that both
// rows appear with every handshake ok, never any time.
func TestDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs TLS handshakes")
	}
	cfg := quick("delay")
	cfg.delay, cfg.n, cfg.stackedN = 50*time.Millisecond, 4, 2
	var out bytes.Buffer
	if err := run(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| async | 4 | 4 | 4 |", "| stacked | 1 | 2 | 2 |", "stacked / async"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestQAT runs the QuickAssist suite briefly: each of its four tables
// must be printed with its rows (every case checks its first result
// against the standard library before timing), and every figure labelled
// as modelled.
func TestQAT(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the modelled card")
	}
	var out bytes.Buffer
	if err := run(&out, quick("qat")); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	for _, want := range []string{
		"| 1 | ", "| 128 | ",
		"| 5µs | off | 1 |", "| 20µs | 8 (20µs) | 64 |", "| 20µs | 32 (20µs) | 64 |",
		"| idle for 40ms | 0 | 0 |",
		"| 64 B | 1 |", "| 2 KiB | 1 |", "| 16 KiB | 1 |",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if n := strings.Count(o, "\n|---"); n != 4 {
		t.Errorf("want four tables, found %d:\n%s", n, o)
	}
	if n := strings.Count(o, "### "); n != strings.Count(o, "tier 1, modelled)") {
		t.Errorf("a QuickAssist table's title does not say its figures are modelled:\n%s", o)
	}
}

// TestPKCS11 runs the pkcs11 suite against SoftHSM2 with 1 and 8 callers
// and no thread measurement. Without SoftHSM2 it skips, except in CI.
func TestPKCS11(t *testing.T) {
	if testing.Short() {
		t.Skip("runs SoftHSM2")
	}
	cfg := quick("pkcs11")
	cfg.callers = []int{1, 8}
	cfg.threadCallers = 0
	var out bytes.Buffer
	err := run(&out, cfg)
	missing := ""
	if errors.Is(err, errNoHSM) {
		missing = err.Error()
	}
	devicetest.Need(t, devicetest.SoftHSM2, missing, "apt-get install softhsm2 opensc")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| ECDSA P-256 | 1 |", "| ECDSA P-256 | 8 |", "| RSA-2048 PKCS#1 v1.5 | 8 |",
		"| ECDSA P-256 | offcrypt |", "| ECDSA P-256 | crypto11 |", "| RSA-2048 PKCS#1 v1.5 | raw |",
		"| key | callers | owner loop ops/s | µs CPU per signature: owner loop |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if processCPU() > 0 && strings.Contains(out.String(), "n/a") {
		t.Errorf("CPU time is readable here, but a CPU column says n/a:\n%s", out.String())
	}
	if strings.Contains(out.String(), "OS threads") {
		t.Errorf("thread measurement ran with threadCallers 0:\n%s", out.String())
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{defaultSuites, []string{"sign", "future", "hash", "cipher", "tls"}, false},
		{" pkcs11 , delay", []string{"pkcs11", "delay"}, false},
		{"sign,nope", nil, true},
		{",", nil, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseSuites(c.in)
			if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
				t.Errorf("parseSuites(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.wantErr)
			}
		})
	}
	for _, c := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1,8,64", []int{1, 8, 64}, false},
		{"4", []int{4}, false},
		{"1,x", nil, true},
		{"0", nil, true},
	} {
		t.Run("ints "+c.in, func(t *testing.T) {
			got, err := parseInts(c.in)
			if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
				t.Errorf("parseInts(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.wantErr)
			}
		})
	}
}

// TestCompareEach checks that every side runs every repetition, with its
// own op per caller, and that an error stops the run.
func TestCompareEach(t *testing.T) {
	cfg := config{dur: time.Millisecond, reps: 3}
	made := make([]int, 3)
	sides := make([]func(int) func() error, 3)
	for i := range sides {
		sides[i] = func(int) func() error {
			made[i]++
			return func() error { return nil }
		}
	}
	r, err := compareEach(sides, 2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sides {
		if made[i] != 2*3 || r[i] <= 0 {
			t.Errorf("side %d: %d ops made (want 6), rate %v", i, made[i], r[i])
		}
	}
	boom := errors.New("boom")
	_, err = compareEach([]func(int) func() error{shared(func() error { return nil }), shared(func() error { return boom })}, 1, cfg)
	if !errors.Is(err, boom) {
		t.Errorf("compareEach error = %v, want %v", err, boom)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{[]time.Duration{7}, 0.99, 7},
		{hundred, 0.50, 50},
		{hundred, 0.99, 99},
		{hundred, 1, 100},
	} {
		if got := percentile(c.in, c.q); got != c.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(c.in), c.q, got, c.want)
		}
	}
}

// TestCallerMemory checks that what callerBuf and callerVar hand out, even
// allocated one after the other with small allocations in between, keeps
// isolation bytes from anything else they handed out.
func TestCallerMemory(t *testing.T) {
	type span struct{ lo, hi uintptr }
	var spans []span
	var keep [][]byte // every allocation stays live, so none is on the stack or reused
	var vars []*[]time.Duration
	for _, n := range []int{1, 16, 80, 80, 80, 200, 4096} {
		b := callerBuf(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("callerBuf(%d): len %d, cap %d", n, len(b), cap(b))
		}
		lo := uintptr(unsafe.Pointer(&b[0]))
		spans = append(spans, span{lo, lo + uintptr(n)})
		keep = append(keep, b, make([]byte, n))
	}
	for range 4 {
		p := callerVar[[]time.Duration]()
		lo := uintptr(unsafe.Pointer(p))
		spans = append(spans, span{lo, lo + unsafe.Sizeof(*p)})
		vars = append(vars, p)
		keep = append(keep, make([]byte, 24))
	}
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			gap := max(int64(b.lo)-int64(a.hi), int64(a.lo)-int64(b.hi))
			if gap < isolation {
				t.Errorf("per-caller memory %#x-%#x and %#x-%#x are %d bytes apart, want at least %d", a.lo, a.hi, b.lo, b.hi, gap, isolation)
			}
		}
	}
	runtime.KeepAlive(keep)
	runtime.KeepAlive(vars)
}
