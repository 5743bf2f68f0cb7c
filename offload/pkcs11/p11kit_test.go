//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/conformance"
)

// p11-kit's client module: a PKCS #11 module that forwards every call over
// a socket to `p11-kit server`, which runs the real module (here SoftHSM2,
// exporting the remoteToken) in another process: the off-box case. The
// client reads P11_KIT_SERVER_ADDRESS when it is initialised, so the
// variable is set for the whole process before the first engine opens it;
// it is a different module path from SoftHSM's, so the module registry
// keeps a separate record and both can be initialised at once.
const p11kitClient = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"

// p11srv is the running `p11-kit server`, if any.
var p11srv struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  string // the server's output file
	done chan struct{}
}

// needP11Kit skips (or, in CI, fails) a test when p11-kit's server or
// client module is missing.
func needP11Kit(t testing.TB) {
	t.Helper()
	needHSM(t)
	missing := ""
	if _, err := exec.LookPath("p11-kit"); err != nil {
		missing = "p11-kit not found"
	} else if _, err := os.Stat(p11kitClient); err != nil {
		missing = p11kitClient + " not found"
	}
	devicetest.Need(t, devicetest.P11Kit, missing, "apt-get install p11-kit p11-kit-modules")
}

// p11Socket is the server's socket: the same path for every start, so a
// restarted server is found where the client module looks.
func p11Socket() string { return filepath.Join(hsm.dir, "p11.sock") }

// startP11Server starts `p11-kit server` exporting the remote token and
// waits for its socket. t's cleanup stops it.
func startP11Server(t testing.TB) {
	t.Helper()
	if err := startP11(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopP11Server)
}

func startP11() error {
	p11srv.mu.Lock()
	defer p11srv.mu.Unlock()
	if p11srv.cmd != nil {
		return errors.New("p11-kit server already running")
	}
	sock := p11Socket()
	os.Remove(sock)
	cmd := exec.Command("p11-kit", "server", "-f", "-n", sock, "--provider", softhsmModule, "pkcs11:token="+remoteToken)
	// The server forks a child per connection, which would hold a pipe
	// open after the server is killed: log to a file, and kill the whole
	// process group.
	out, err := os.CreateTemp(hsm.dir, "p11-kit-server-*.log")
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out // SOFTHSM2_CONF comes from the process environment
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting p11-kit server: %w", err)
	}
	log := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The socket file appears when the server binds it, a moment
		// before it listens: a client module initialised in between finds
		// no server and lists no token. Wait for a connection instead.
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("p11-kit server exited: %s", log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("p11-kit server made no socket: %s", log())
		}
	}
	os.Setenv("P11_KIT_SERVER_ADDRESS", "unix:path="+sock)
	p11srv.cmd, p11srv.log, p11srv.done = cmd, out.Name(), done
	return nil
}

// stopP11Server kills the server, if one runs, and waits for it.
func stopP11Server() {
	p11srv.mu.Lock()
	defer p11srv.mu.Unlock()
	if p11srv.cmd == nil {
		return
	}
	syscall.Kill(-p11srv.cmd.Process.Pid, syscall.SIGKILL)
	<-p11srv.done
	p11srv.cmd = nil
}

// openRemote opens an engine on the remote token through the client module.
func openRemote(t testing.TB, c Config) *Engine {
	t.Helper()
	c.Module, c.TokenLabel, c.PIN = p11kitClient, remoteToken, pinFunc(remotePIN)
	e, err := Open(context.Background(), c)
	if err != nil {
		p11srv.mu.Lock()
		defer p11srv.mu.Unlock()
		out := ""
		if p11srv.log != "" {
			b, _ := os.ReadFile(p11srv.log)
			out = string(b)
		}
		t.Fatalf("Open through p11-kit: %v\nserver: %s", err, out)
	}
	return e
}

// TestP11KitConformance runs the shared suite through p11-kit's remote
// server, with keys imported through the client module (C_CreateObject)
// or, where an import is refused, generated on the exported token.
func TestP11KitConformance(t *testing.T) {
	needP11Kit(t)
	startP11Server(t)
	conformance.Run(t, func(t *testing.T) conformance.Setup {
		e := openRemote(t, Config{MaxInFlight: 2})
		return conformance.Setup{Engine: e, Import: e.ImportKey, Generate: e.GenerateKey, Saturate: saturate(e)}
	})
}

// TestP11KitRestart kills the server in the middle of a run and starts it
// again on the same socket: the engine recovers (the client module answers
// for a lost server as recorded below) and signs again.
func TestP11KitRestart(t *testing.T) {
	needP11Kit(t)
	startP11Server(t)
	e := openRemote(t, Config{MaxInFlight: 2})
	defer e.Close()
	k, err := e.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	signOK(t, e, k, "before the restart")
	t.Logf("through p11-kit: %v", e.Info().Algorithms)
	// A second engine on the client module, idle through the outage.
	other := openRemote(t, Config{MaxInFlight: 1})
	defer other.Close()
	ko, err := other.FindKeyURI(context.Background(), &URI{ID: k.Handle().(*keyHandle).id})
	if err != nil {
		t.Fatal(err)
	}

	stopP11Server()
	// With the server gone, requests fail (and are not retried forever).
	err = signErr(e, k)
	if err == nil {
		t.Fatal("signed with the server down")
	}
	code, _ := ckCode(err)
	t.Logf("server down: %v (code %v); recovery %+v", err, code, e.Recovery())

	if err := startP11(); err != nil {
		t.Fatal(err)
	}
	// The engine finds the token again; requests the breaker refuses while
	// it cools down are retried here.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := signErr(e, k)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the restart: %v; recovery %+v", err, e.Recovery())
		}
		t.Logf("after the restart: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 4 {
		signOK(t, e, k, fmt.Sprint("after the restart ", i))
	}
	r := e.Recovery()
	t.Logf("recovery %+v", r)
	if r.Reopened == 0 || r.Reinitialized == 0 {
		t.Fatalf("want reopened sessions and a re-initialised module: %+v", r)
	}
	// The other engine reopens its session in the module's new life and
	// finds its key again, without initialising the module once more.
	signOK(t, other, ko, "other engine after the restart")
	if ro := other.Recovery(); ro.Reopened != 1 || ro.Reinitialized != 0 || ro.Failed != 0 {
		t.Fatalf("other engine: %+v", ro)
	}
}
