//go:build cgo

package pkcs11

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// The restart test runs its engine in a child process (this test binary,
// started again with restartChildEnv set to the engine's MaxInFlight), so
// that a module that aborts or crashes the process fails the test with the
// child's signal and output instead of taking the test binary with it. The
// parent owns the p11-kit server and drives the child over its stdin and
// stdout, one line each way per step:
//
//	child:  ready
//	parent: down N     (the server has been killed)
//	child:  down N ... (its signers saw the outage)
//	parent: up N       (the server runs again)
//	child:  up N ...   (every signer has signed again since "up N")
//	parent: close
//	child:  closed     (signers stopped, Close returned)
const restartChildEnv = "OFFCRYPT_TEST_P11KIT_RESTART_CHILD"

// Bounds on the child's steps. A step that takes longer is a failure that
// names what is stuck; none of them is a timing assertion.
const (
	restartSigners   = 8
	restartCycles    = 3
	restartStepBound = 20 * time.Second
)

// TestP11KitRestartUnderLoad kills and restarts the p11-kit server under
// an engine with 1, 4 and 8 sessions while 8 goroutines sign through it:
// the process survives, every signer signs again after each restart, no
// error during an outage says the key is gone, and Close returns.
func TestP11KitRestartUnderLoad(t *testing.T) {
	needP11Kit(t)
	for _, n := range []int{1, 4, 8} {
		t.Run(fmt.Sprint("sessions-", n), func(t *testing.T) {
			startP11Server(t)
			c := startRestartChild(t, n)
			c.expect("ready")
			for cycle := range restartCycles {
				stopP11Server()
				c.send("down %d", cycle)
				t.Log(c.expect(fmt.Sprint("down ", cycle)))
				if err := startP11(); err != nil {
					t.Fatal(err)
				}
				c.send("up %d", cycle)
				t.Log(c.expect(fmt.Sprint("up ", cycle)))
			}
			c.send("close")
			t.Log(c.expect("closed"))
			c.exit()
		})
	}
}

// restartChild is the parent's side of one child process.
type restartChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // the child's stdout, line by line; closed at EOF
	stderr *os.File
	done   chan struct{} // closed when the child has exited
	err    error         // cmd.Wait's answer, set before done closes
}

func startRestartChild(t *testing.T, sessions int) *restartChild {
	t.Helper()
	stderr, err := os.CreateTemp(t.TempDir(), "child-stderr-*")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), restartChildEnv+"="+strconv.Itoa(sessions))
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &restartChild{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16), stderr: stderr, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *restartChild) send(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.stdin, format+"\n", args...); err != nil {
		c.fail("writing to the child: %v", err)
	}
}

// expect returns the child's next line, which must start with prefix.
func (c *restartChild) expect(prefix string) string {
	c.t.Helper()
	select {
	case line, ok := <-c.lines:
		switch {
		case !ok:
			c.fail("the child ended its output while the parent waited for %q", prefix)
		case !strings.HasPrefix(line, prefix):
			c.fail("the child said %q, want %q", line, prefix)
		}
		return line
	case <-time.After(restartStepBound + 10*time.Second):
		// The child bounds its own steps and explains itself; this only
		// catches a child that hangs whole. SIGQUIT makes the Go runtime
		// print every goroutine's stack to stderr.
		c.cmd.Process.Signal(syscall.SIGQUIT)
		c.fail("no %q from the child: sent SIGQUIT for its stacks", prefix)
	}
	return ""
}

// exit waits for the child to exit and fails unless it exited with 0.
func (c *restartChild) exit() {
	c.t.Helper()
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(restartStepBound):
		c.cmd.Process.Signal(syscall.SIGQUIT)
		c.fail("the child did not exit after \"closed\": sent SIGQUIT for its stacks")
	}
	if c.err != nil {
		c.fail("the child failed")
	}
}

// fail reports how the child ended (its signal or exit status) and the
// tail of its stderr, and ends the test.
func (c *restartChild) fail(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	select {
	case <-c.done:
	case <-time.After(restartStepBound):
		c.cmd.Process.Kill()
		<-c.done
	}
	status := "exited 0"
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = "killed by " + ws.Signal().String()
		} else {
			status = fmt.Sprint("exited ", ee.ExitCode())
		}
	} else if c.err != nil {
		status = c.err.Error()
	}
	for line := range c.lines { // what it said after the parent stopped listening
		msg += "\nchild: " + line
	}
	out, _ := os.ReadFile(c.stderr.Name())
	// A signal raised in C code (an assert's SIGABRT, a SIGSEGV) is caught
	// by the Go runtime, which prints "SIGABRT: abort" and the stacks and
	// exits with 2: name the signal, and keep the head of the output (the
	// C library's last words, the signal) and its tail.
	for line := range strings.Lines(string(out)) {
		if sig, _, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(sig, "SIG") && sig == strings.ToUpper(sig) {
			status += " after " + sig
			break
		}
	}
	const head, tail = 4 << 10, 8 << 10
	if len(out) > head+tail {
		out = slices.Concat(out[:head], []byte("\n...\n"), out[len(out)-tail:])
	}
	c.t.Fatalf("%s\nchild %s; its stderr:\n%s", msg, status, out)
}

// runRestartChild is the child's side: it opens the engine on p11-kit's
// client module with MaxInFlight sessions, starts the signers and follows
// the parent's steps. It returns the process's exit code.
func runRestartChild(sessions int) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		return 3
	}
	ctx := context.Background()
	e, err := Open(ctx, Config{
		Module: p11kitClient, TokenLabel: remoteToken, PIN: pinFunc(remotePIN),
		MaxInFlight: sessions, BreakerCooldown: 50 * time.Millisecond,
	})
	if err != nil {
		return fail("Open: %v", err)
	}
	k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		return fail("GenerateKey: %v", err)
	}
	sg := newSigners(e, k)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		word, arg, _ := strings.Cut(in.Text(), " ")
		switch word {
		case "down":
			// Every signer has begun a request since the server died.
			epoch := sg.next()
			if msg := sg.await(epoch, false); msg != "" {
				return fail("outage %s: %s", arg, msg)
			}
			fmt.Printf("down %s: %s\n", arg, sg.report())
		case "up":
			// Every signer has signed, with a request begun since the
			// server is back.
			epoch := sg.next()
			if msg := sg.await(epoch, true); msg != "" {
				return fail("after restart %s: %s; recovery %+v", arg, msg, e.Recovery())
			}
			fmt.Printf("up %s: %s; recovery %+v\n", arg, sg.report(), e.Recovery())
		case "close":
			if msg := sg.stop(); msg != "" {
				return fail("stopping the signers: %s", msg)
			}
			closed := make(chan error, 1)
			go func() { closed <- e.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					// The module was re-initialised under the sessions
					// Close ends; nothing in it may still be wrong.
					return fail("Close: %v", err)
				}
			case <-time.After(restartStepBound):
				return fail("Close did not return within %v", restartStepBound)
			}
			if msg := sg.violations(); msg != "" {
				return fail("%s", msg)
			}
			fmt.Println("closed")
			return 0
		default:
			return fail("unknown step %q", in.Text())
		}
	}
	return fail("stdin ended before \"close\"")
}

// signers are the child's signing goroutines.
type signers struct {
	e      *Engine
	k      *offload.Key
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	epoch  atomic.Int64 // the parent's step the signers are in
	s      [restartSigners]signerState

	mu       sync.Mutex
	errs     map[string]int // error classes seen since the last report
	notFound []error        // errors that said the key is gone: never right here
}

type signerState struct {
	began  atomic.Int64 // epoch of the request under way, or of the last one
	signed atomic.Int64 // epoch in which the last successful request began
	since  atomic.Int64 // when the request under way began (UnixNano); 0 between requests
}

func newSigners(e *Engine, k *offload.Key) *signers {
	sg := &signers{e: e, k: k, errs: make(map[string]int)}
	sg.ctx, sg.cancel = context.WithCancel(context.Background())
	for i := range sg.s {
		sg.wg.Go(func() { sg.run(i) })
	}
	return sg
}

func (sg *signers) next() int64 { return sg.epoch.Add(1) }

func (sg *signers) run(i int) {
	st := &sg.s[i]
	for n := 0; sg.ctx.Err() == nil; n++ {
		epoch := sg.epoch.Load()
		st.began.Store(epoch)
		st.since.Store(time.Now().UnixNano())
		digest := hashOf(crypto.SHA256, fmt.Appendf(nil, "signer %d request %d", i, n))
		sig, err := sg.e.Sign(sg.ctx, &offload.SignRequest{Key: sg.k, Digest: digest, Opts: crypto.SHA256}).Wait(sg.ctx)
		st.since.Store(0)
		switch {
		case err == nil && !ecdsa.VerifyASN1(sg.k.Public().(*ecdsa.PublicKey), digest, sig):
			sg.record(fmt.Errorf("signer %d: bad signature", i))
		case err == nil:
			st.signed.Store(epoch)
		case sg.ctx.Err() != nil:
			return
		default:
			sg.record(err)
			time.Sleep(time.Millisecond) // an outage fails fast: do not spin
		}
	}
}

func (sg *signers) record(err error) {
	class := "other"
	switch {
	case errors.Is(err, offload.ErrNotFound):
		class = "not-found"
	case errors.Is(err, offload.ErrUnavailable):
		class = "unavailable"
	case errors.Is(err, offload.ErrBusy):
		class = "busy"
	}
	sg.mu.Lock()
	defer sg.mu.Unlock()
	sg.errs[class]++
	if class == "not-found" && len(sg.notFound) < 4 {
		sg.notFound = append(sg.notFound, err)
	}
	if class == "other" && sg.errs[class] <= 4 {
		fmt.Fprintf(os.Stderr, "child: error: %v\n", err)
	}
}

// await waits until every signer has begun a request in epoch (and, with
// signed, has signed with one). It returns "" or what is stuck.
func (sg *signers) await(epoch int64, signed bool) string {
	deadline := time.Now().Add(restartStepBound)
	for {
		var stuck []string
		for i := range sg.s {
			st := &sg.s[i]
			if st.began.Load() >= epoch && (!signed || st.signed.Load() >= epoch) {
				continue
			}
			what := fmt.Sprintf("signer %d (last signed in step %d)", i, st.signed.Load())
			if since := st.since.Load(); since != 0 {
				what += fmt.Sprintf(" blocked in Sign for %v", time.Since(time.Unix(0, since)).Round(time.Millisecond))
			}
			stuck = append(stuck, what)
		}
		if len(stuck) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("after %v: %s", restartStepBound, strings.Join(stuck, "; "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// report returns the error classes seen since the last report.
func (sg *signers) report() string {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	s := fmt.Sprint(sg.errs)
	clear(sg.errs)
	return "errors " + s
}

// stop cancels the signers and waits for them.
func (sg *signers) stop() string {
	sg.cancel()
	done := make(chan struct{})
	go func() { sg.wg.Wait(); close(done) }()
	select {
	case <-done:
		return ""
	case <-time.After(restartStepBound):
		return "signers still running after their context ended"
	}
}

// violations returns the errors no outage may produce.
func (sg *signers) violations() string {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if len(sg.notFound) == 0 {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d errors during outages said the key is not found:", len(sg.notFound))
	for _, err := range sg.notFound {
		fmt.Fprintf(&b, "\n\t%v", err)
	}
	return b.String()
}
