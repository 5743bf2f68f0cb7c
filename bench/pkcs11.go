//go:build cgo

package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/offcrypt/offcrypt/internal/softhsm"
	op11 "github.com/offcrypt/offcrypt/offload/pkcs11"
	"github.com/offcrypt/offcrypt/signer"
)

// The SoftHSM2 token the pkcs11 suite makes for itself.
const (
	softhsmModule = softhsm.Module
	p11Token      = "offcrypt-bench"
	p11PIN        = "1234"
)

// errNoHSM reports that SoftHSM2 or pkcs11-tool is not installed.
var errNoHSM = errors.New("SoftHSM2 and OpenSC's pkcs11-tool are needed (apt-get install softhsm2 opensc)")

// A p11Key is one key pkcs11-tool made on the token, and the one signature
// every side computes with it.
type p11Key struct {
	name   string // for the table
	label  string // CKA_LABEL
	digest []byte // SHA-256 of the message
	mech   uint   // the raw loop's mechanism
	data   []byte // the raw loop's C_Sign input
}

var p11Digest = sha256.Sum256([]byte("offcrypt pkcs11 bench message"))

// sha256DigestInfo is the DER prefix of a PKCS #1 v1.5 SHA-256 DigestInfo.
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

func p11Keys() []p11Key {
	return []p11Key{
		{"ECDSA P-256", "bench-ec", p11Digest[:], pkcs11.CKM_ECDSA, p11Digest[:]},
		{"RSA-2048 PKCS#1 v1.5", "bench-rsa", p11Digest[:], pkcs11.CKM_RSA_PKCS, append(slices.Clone(sha256DigestInfo), p11Digest[:]...)},
	}
}

// setupSoftHSM makes a SoftHSM2 configuration and token directory in a
// temporary directory, points SOFTHSM2_CONF at it (before any module is
// initialised in this process; child processes inherit it), initialises a
// token and makes an ECDSA P-256 and an RSA-2048 key on it with pkcs11-tool,
// so every side signs with the same token objects.
func setupSoftHSM() (cleanup func(), err error) {
	tool, err := exec.LookPath("pkcs11-tool")
	if why := softhsm.Missing(); why != "" {
		err = errors.Join(errors.New(why), err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoHSM, err)
	}
	dir, err := os.MkdirTemp("", "offcrypt-bench-softhsm-")
	if err != nil {
		return nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	fail := func(err error) (func(), error) { cleanup(); return nil, err }
	conf, err := softhsm.Setup(dir, softhsm.Token{Label: p11Token, PIN: p11PIN})
	if err != nil {
		return fail(err)
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return nil
	}
	p11 := func(args ...string) error {
		return run(tool, append([]string{"--module", softhsmModule, "--token-label", p11Token, "--login", "--pin", p11PIN}, args...)...)
	}
	if err := p11("--keypairgen", "--key-type", "EC:prime256v1", "--label", "bench-ec", "--id", "01"); err != nil {
		return fail(err)
	}
	if err := p11("--keypairgen", "--key-type", "rsa:2048", "--label", "bench-rsa", "--id", "02"); err != nil {
		return fail(err)
	}
	return cleanup, nil
}

// rawToken is miekg/pkcs11 called directly, with no library between: S
// sessions shared by the callers through a channel (sign), or each owned by
// one goroutine (owners); C_SignInit and C_Sign per signature.
type rawToken struct {
	p        *pkcs11.Ctx
	sessions chan pkcs11.SessionHandle
	all      []pkcs11.SessionHandle
}

func openRaw(sessions int) (*rawToken, error) {
	p := pkcs11.New(softhsmModule)
	if p == nil {
		return nil, fmt.Errorf("raw: cannot load %s", softhsmModule)
	}
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return nil, fmt.Errorf("raw: C_Initialize: %w", err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("raw: C_GetSlotList: %w", err)
	}
	slot, found := uint(0), false
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " ") == p11Token {
			slot, found = s, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("raw: token %q not found", p11Token)
	}
	r := &rawToken{p: p, sessions: make(chan pkcs11.SessionHandle, sessions)}
	for range sessions {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("raw: C_OpenSession: %w", err)
		}
		r.all = append(r.all, sh)
		r.sessions <- sh
	}
	if err := p.Login(r.all[0], pkcs11.CKU_USER, p11PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		r.close()
		return nil, fmt.Errorf("raw: C_Login: %w", err)
	}
	return r, nil
}

// find returns the private key object labelled label.
func (r *rawToken) find(label string) (pkcs11.ObjectHandle, error) {
	sh := <-r.sessions
	defer func() { r.sessions <- sh }()
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := r.p.FindObjectsInit(sh, tmpl); err != nil {
		return 0, fmt.Errorf("raw: C_FindObjectsInit: %w", err)
	}
	objs, _, err := r.p.FindObjects(sh, 2)
	r.p.FindObjectsFinal(sh)
	if err != nil {
		return 0, fmt.Errorf("raw: C_FindObjects: %w", err)
	}
	if len(objs) != 1 {
		return 0, fmt.Errorf("raw: %d private keys labelled %q, want 1", len(objs), label)
	}
	return objs[0], nil
}

// signOn signs on session sh, which the caller owns.
func (r *rawToken) signOn(sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle, mech uint, data []byte) error {
	if err := r.p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, obj); err != nil {
		return fmt.Errorf("raw: C_SignInit: %w", err)
	}
	if _, err := r.p.Sign(sh, data); err != nil {
		return fmt.Errorf("raw: C_Sign: %w", err)
	}
	return nil
}

// owners is the owner loop, to be run with S callers: caller i owns
// session i and signs in a loop, with no hand-off: S sessions kept busy
// with nothing else in the way.
func (r *rawToken) owners(obj pkcs11.ObjectHandle, mech uint, data []byte) func(int) func() error {
	return func(i int) func() error {
		sh := r.all[i]
		return func() error { return r.signOn(sh, obj, mech, data) }
	}
}

func (r *rawToken) sign(obj pkcs11.ObjectHandle, mech uint, data []byte) ([]byte, error) {
	sh := <-r.sessions
	defer func() { r.sessions <- sh }()
	if err := r.p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, obj); err != nil {
		return nil, fmt.Errorf("raw: C_SignInit: %w", err)
	}
	sig, err := r.p.Sign(sh, data)
	if err != nil {
		return nil, fmt.Errorf("raw: C_Sign: %w", err)
	}
	return sig, nil
}

// close closes the sessions. It neither logs out nor finalises: the other
// sides in this process share the module's login and initialisation.
func (r *rawToken) close() {
	for _, sh := range r.all {
		r.p.CloseSession(sh)
	}
}

func pinFunc(context.Context) ([]byte, error) { return []byte(p11PIN), nil }

func openOffcrypt(sessions int) (*op11.Engine, error) {
	return op11.Open(context.Background(), op11.Config{
		Module: softhsmModule, TokenLabel: p11Token, PIN: pinFunc, MaxInFlight: sessions,
	})
}

func offcryptSigner(eng *op11.Engine, label string) (*signer.Signer, error) {
	key, err := eng.FindKey(context.Background(), "pkcs11:token="+p11Token+";object="+label+";type=private")
	if err != nil {
		return nil, err
	}
	return signer.New(key)
}

// openCrypto11 configures crypto11 on the token. crypto11 keeps one session
// of its MaxSessions for its login and signs on the rest, so MaxSessions is
// sessions+1: it signs on as many sessions as the other sides.
func openCrypto11(sessions int) (*crypto11.Context, error) {
	return crypto11.Configure(&crypto11.Config{
		Path: softhsmModule, TokenLabel: p11Token, Pin: p11PIN, MaxSessions: sessions + 1,
	})
}

func crypto11Signer(c *crypto11.Context, label string) (crypto.Signer, error) {
	s, err := c.FindKeyPair(nil, []byte(label))
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("crypto11: no key pair labelled %q", label)
	}
	return s, nil
}

// verify checks sig, in the standard library's encoding or (raw ECDSA) as
// r‖s, against pub.
func verify(pub crypto.PublicKey, digest, sig []byte, rawECDSA bool) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if rawECDSA {
			n := len(sig) / 2
			if len(sig) == 0 || !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
				return errors.New("ECDSA signature does not verify")
			}
			return nil
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	}
	return fmt.Errorf("unexpected public key %T", pub)
}

// latencies records each caller's per-signature latency, in a slice per
// caller allocated before the clock starts, its header on cache lines of
// its own (callerVar) since every signature appends to it.
type latencies struct {
	per []*[]time.Duration
}

func newLatencies(callers, capacity int) *latencies {
	l := &latencies{per: make([]*[]time.Duration, callers)}
	for i := range l.per {
		l.per[i] = callerVar[[]time.Duration]()
		*l.per[i] = make([]time.Duration, 0, capacity)
	}
	return l
}

// wrap returns a per-caller factory whose ops time sign into caller i's
// slice.
func (l *latencies) wrap(sign func() error) func(int) func() error {
	return func(i int) func() error {
		lat := l.per[i]
		return func() error {
			t0 := time.Now()
			err := sign()
			*lat = append(*lat, time.Since(t0))
			return err
		}
	}
}

func (l *latencies) sorted() []time.Duration {
	var all []time.Duration
	for _, p := range l.per {
		all = append(all, *p...)
	}
	slices.Sort(all)
	return all
}

// runPKCS11 measures ECDSA P-256 and RSA-2048 signatures on one SoftHSM2
// token through three sides with the same number of sessions: the raw
// miekg/pkcs11 loop, offcrypt's pkcs11 engine behind signer/, and crypto11.
// Then, unless cfg.threadCallers is 0, the OS threads each of offcrypt and
// crypto11 creates for that many concurrent callers, each in a child
// process of its own.
func runPKCS11(w io.Writer, cfg config) error {
	cleanup, err := setupSoftHSM()
	if err != nil {
		return err
	}
	defer cleanup()
	if err := pkcs11Throughput(w, cfg); err != nil {
		return err
	}
	if cfg.threadCallers > 0 {
		return pkcs11Threads(w, cfg)
	}
	return nil
}

func pkcs11Throughput(w io.Writer, cfg config) error {
	s := max(cfg.sessions, 1)
	// crypto11 first: it refuses a module someone else in the process has
	// initialised, while offcrypt and the raw loop share it.
	c11, err := openCrypto11(s)
	if err != nil {
		return fmt.Errorf("crypto11: %w", err)
	}
	defer c11.Close()
	eng, err := openOffcrypt(s)
	if err != nil {
		return err
	}
	defer eng.Close() // before crypto11's Close: it logs the process out
	raw, err := openRaw(s)
	if err != nil {
		return err
	}
	defer raw.close()

	maxCallers := slices.Max(cfg.callers)
	type latRow struct {
		key  string
		side string
		lat  []time.Duration
	}
	var latRows []latRow
	var cpuRows []string

	fmt.Fprintf(w, "### PKCS#11 signatures on SoftHSM2, %d sessions each: token ceiling and raw miekg/pkcs11 loop, offcrypt (pkcs11 engine + signer/), crypto11 v1.5.0\n", s)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| key | callers | ceiling ops/s | raw ops/s | offcrypt ops/s | crypto11 ops/s | offcrypt / raw | offcrypt / crypto11 | crypto11 / raw | offcrypt / ceiling |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, k := range p11Keys() {
		// Every row of this key is measured before its ceiling, which
		// takes all of them, can be printed.
		type row struct {
			callers int
			m       []result
		}
		var rows []row
		obj, err := raw.find(k.label)
		if err != nil {
			return err
		}
		ofs, err := offcryptSigner(eng, k.label)
		if err != nil {
			return fmt.Errorf("offcrypt: %w", err)
		}
		cs, err := crypto11Signer(c11, k.label)
		if err != nil {
			return fmt.Errorf("crypto11: %w", err)
		}
		pub := ofs.Public()
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(cs.Public()) {
			return fmt.Errorf("%s: offcrypt and crypto11 found different keys", k.name)
		}
		sides := []struct {
			name string
			sign func() ([]byte, error)
			raw  bool
		}{
			{"raw", func() ([]byte, error) { return raw.sign(obj, k.mech, k.data) }, true},
			{"offcrypt", func() ([]byte, error) { return ofs.Sign(rand.Reader, k.digest, crypto.SHA256) }, false},
			{"crypto11", func() ([]byte, error) { return cs.Sign(rand.Reader, k.digest, crypto.SHA256) }, false},
		}
		for _, sd := range sides {
			sig, err := sd.sign()
			if err == nil {
				err = verify(pub, k.digest, sig, sd.raw && k.mech == pkcs11.CKM_ECDSA)
			}
			if err != nil {
				return fmt.Errorf("%s, %s: %w", k.name, sd.name, err)
			}
		}
		for _, callers := range cfg.callers {
			// Room for every latency at 20,000 signatures/s, more than
			// SoftHSM2 does on these machines, so appends do not allocate.
			capacity := int(20000*cfg.dur.Seconds()*float64(cfg.reps))/callers + 64
			lats := make([]*latencies, len(sides))
			factories := make([]func(int) func() error, len(sides))
			counts := make([]int, len(sides))
			for i, sd := range sides {
				lats[i] = newLatencies(callers, capacity)
				factories[i] = lats[i].wrap(func() error { _, err := sd.sign(); return err })
				counts[i] = callers
			}
			// The owner loop runs beside them, always with S callers.
			factories = append(factories, raw.owners(obj, k.mech, k.data))
			counts = append(counts, len(raw.all))
			m, err := measureSides(factories, counts, cfg)
			if err != nil {
				return fmt.Errorf("%s, %d callers: %w", k.name, callers, err)
			}
			rows = append(rows, row{callers, m})
			if callers == maxCallers {
				for i, sd := range sides {
					latRows = append(latRows, latRow{k.name, sd.name, lats[i].sorted()})
				}
			}
		}
		var all []result
		for _, r := range rows {
			all = append(all, r.m...)
		}
		ceil := tokenCeiling(all, s)
		for _, r := range rows {
			m, own := r.m, r.m[3]
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f | %.3f | %.3f |\n",
				k.name, r.callers, ceil, m[0].rate, m[1].rate, m[2].rate, m[1].rate/m[0].rate, m[1].rate/m[2].rate, m[2].rate/m[0].rate, m[1].rate/ceil)
			title := fmt.Sprintf("PKCS#11 signatures on SoftHSM2, %d sessions each side", s)
			for i, side := range []string{"raw", "offcrypt", "crypto11"} {
				cfg.charts.addRate("pkcs11", title, k.name, side, side != "offcrypt", r.callers, m[i].rate)
			}
			cfg.charts.addRate("pkcs11", title, k.name, "ceiling", true, r.callers, ceil)
			cpuRows = append(cpuRows, fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |",
				k.name, r.callers, own.rate, cpuMicros(own), cpuMicros(m[0]), cpuMicros(m[1]), cpuMicros(m[2]),
				coresUsed(own), coresUsed(m[0]), coresUsed(m[1]), coresUsed(m[2])))
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Where the CPU went: the owner loop's rate, the process's CPU time (user and system, every goroutine and thread in it) per signature, and the CPUs the process had while each side ran (medians of the repetitions):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| key | callers | owner loop ops/s | µs CPU per signature: owner loop | raw | offcrypt | crypto11 | CPUs used: owner loop | raw | offcrypt | crypto11 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range cpuRows {
		fmt.Fprintln(w, row)
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "Latency per signature at %d callers (every signature of every repetition; fairness target: p99 at most 3× p50):\n", maxCallers)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| key | side | signatures | p50 | p99 | p99 / p50 | max |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, lr := range latRows {
		p50, p99 := percentile(lr.lat, 0.50), percentile(lr.lat, 0.99)
		fmt.Fprintf(w, "| %s | %s | %d | %v | %v | %.1f | %v |\n", lr.key, lr.side, len(lr.lat),
			roundDur(p50), roundDur(p99), float64(p99)/float64(max(p50, 1)), roundDur(percentile(lr.lat, 1)))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "raw: the callers share %d sessions through a channel and call C_SignInit+C_Sign themselves. "+
		"owner loop: %d goroutines, each owning one session and signing in a loop (no hand-off; the same whatever the callers, measured again in every row, alternating with the other sides). "+
		"ceiling: what the token can give %d sessions in this process, one figure per key: min(sessions, GOMAXPROCS) = %d CPUs, each signing at the lowest CPU time per signature any side showed in any row of the key (second table). "+
		"SoftHSM2 signs on the calling thread and its sessions hardly wait for each other (go test -bench OwnerLoop reads the kernel's scheduler statistics of each owner thread: with 2 sessions a thread is blocked 2-7 %% of its time and otherwise on a CPU or waiting for one, and a signature costs about 20 %% more CPU than with one session alone, the threads sharing SoftHSM2's and OpenSSL's state), so the token is bound by CPU: "+
		"a side's rate follows the CPUs the process is given while it runs (on a shared machine fewer than GOMAXPROCS) and its CPU time per signature, and the owner loop's rate is not a ceiling, a side given more CPUs or paying less per signature beats it. "+
		"The ceiling is reached only by keeping every CPU busy at the cheapest signature; with 1 caller raw and crypto11 often show that one, but keep at most one CPU busy. ",
		s, s, s, min(s, runtime.GOMAXPROCS(0)))
	fmt.Fprintf(w, "All three sides sign with the same token objects (made by pkcs11-tool), with CKM_ECDSA and CKM_RSA_PKCS over a SHA-256 digest, on %d sessions; crypto11 gets MaxSessions %d because it keeps one session for its login and signs on the others.\n", s, s+1)
	return nil
}

// tokenCeiling is the most signatures per second the token can give S
// sessions in this process, from every side's results with one key:
// SoftHSM2 signs on the calling thread and barely serialises its sessions,
// so it is bound by CPU, and S sessions can keep at most min(S, GOMAXPROCS)
// CPUs busy, each at best at the lowest CPU time per signature any side
// showed. It is the highest rate any side showed where that is higher (it
// never is on the machines measured), or where the CPU time is unknown.
func tokenCeiling(results []result, sessions int) float64 {
	var best float64
	var cheapest time.Duration
	for _, r := range results {
		best = max(best, r.rate)
		if r.cpuPerOp > 0 && (cheapest == 0 || r.cpuPerOp < cheapest) {
			cheapest = r.cpuPerOp
		}
	}
	if cheapest == 0 {
		return best
	}
	cpus := min(sessions, runtime.GOMAXPROCS(0))
	return max(best, float64(cpus)/cheapest.Seconds())
}

// cpuMicros formats a side's CPU time per signature in µs, "n/a" where
// unknown.
func cpuMicros(r result) string {
	if r.cpuPerOp <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(r.cpuPerOp)/float64(time.Microsecond))
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// pkcs11Threads re-executes this program once per side, offcrypt first,
// so each side's thread count starts from a clean process.
func pkcs11Threads(w io.Writer, cfg config) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	s := max(cfg.sessions, 1)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "### OS threads with %d concurrent callers, ECDSA P-256 on SoftHSM2, %d sessions (each side in a fresh child process)\n", cfg.threadCallers, s)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| side | threads before | threads after | threads created | signatures | wall | target: GOMAXPROCS + sessions + 16 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	var created [2]int
	for i, side := range []string{"offcrypt", "crypto11"} {
		cmd := exec.Command(exe, "-threads-child", side, "-sessions", fmt.Sprint(s), "-thread-callers", fmt.Sprint(cfg.threadCallers))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%s thread measurement: %v\n%s", side, err, stderr.String())
		}
		var before, after, signed int
		var wallNS int64
		if _, err := fmt.Sscan(string(out), &before, &after, &signed, &wallNS); err != nil {
			return fmt.Errorf("%s thread measurement printed %q: %w", side, out, err)
		}
		created[i] = after - before
		wall := time.Duration(wallNS)
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %v | %d |\n", side, before, after, after-before, signed,
			wall.Round(time.Millisecond), runtime.GOMAXPROCS(0)+s+16)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "threads created, offcrypt / crypto11: %d / %d. \"Threads\" is runtime/pprof's threadcreate count (OS threads the Go runtime made); before is after opening the token and one signature, after is once every caller has its signature.\n", created[0], created[1])
	return nil
}

// threadsChild is the child process of pkcs11Threads: it opens the side
// named by cfg.threadChild on the token SOFTHSM2_CONF (inherited from the
// parent) holds, signs once, then starts cfg.threadCallers goroutines,
// releases them together through a closed channel, each signs once, and
// prints the threadcreate count before and after, the signatures made and
// the wall time.
func threadsChild(w io.Writer, cfg config) error {
	s := max(cfg.sessions, 1)
	var sign func() error
	digest := p11Digest[:]
	switch cfg.threadChild {
	case "offcrypt":
		eng, err := openOffcrypt(s)
		if err != nil {
			return err
		}
		defer eng.Close()
		sg, err := offcryptSigner(eng, "bench-ec")
		if err != nil {
			return err
		}
		sign = func() error { _, err := sg.Sign(rand.Reader, digest, crypto.SHA256); return err }
	case "crypto11":
		c, err := openCrypto11(s)
		if err != nil {
			return err
		}
		defer c.Close()
		sg, err := crypto11Signer(c, "bench-ec")
		if err != nil {
			return err
		}
		sign = func() error { _, err := sg.Sign(rand.Reader, digest, crypto.SHA256); return err }
	default:
		return fmt.Errorf("unknown side %q", cfg.threadChild)
	}
	if err := sign(); err != nil {
		return err
	}
	threads := pprof.Lookup("threadcreate")
	before := threads.Count()
	var (
		release = make(chan struct{})
		wg      sync.WaitGroup
		signed  atomic.Int64
		errMu   sync.Mutex
		first   error
	)
	for range cfg.threadCallers {
		wg.Go(func() {
			<-release
			if err := sign(); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
				return
			}
			signed.Add(1)
		})
	}
	start := time.Now()
	close(release)
	wg.Wait()
	wall := time.Since(start)
	after := threads.Count()
	if first != nil {
		return first
	}
	_, err := fmt.Fprintln(w, before, after, signed.Load(), wall.Nanoseconds())
	return err
}
