// Package swtpm starts and stops swtpm, a software TPM 2.0, for tests and
// benchmarks: each instance in its own temporary state directory, on free
// loopback ports, owned by the test that started it.
package swtpm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/devicetest"
)

// TPM is one running swtpm.
type TPM struct {
	// Addr is the data port (raw TPM 2.0 commands), host:port.
	Addr string
	// Port and CtrlPort are the data and control ports.
	Port, CtrlPort int
	// Dir is the state directory.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts swtpm for t and stops it when t ends. Without swtpm the test
// is skipped with an install hint, or fails when CI=true.
func Start(t testing.TB) *TPM {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("swtpm"); err != nil {
		missing = "swtpm not found"
	}
	devicetest.Need(t, devicetest.SWTPM, missing, "apt-get install swtpm swtpm-tools tpm2-tools")
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts swtpm with its state in dir, on free loopback ports, for a
// program that is not a test (bench/); the caller stops it with Stop.
func Launch(dir string) (*TPM, error) {
	s := &TPM{Dir: dir}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// TCTI is the TCTI string tpm2-tools and tpm2-openssl use to reach it.
func (s *TPM) TCTI() string {
	return "swtpm:host=127.0.0.1,port=" + strconv.Itoa(s.Port)
}

func (s *TPM) start() error {
	if s.Port == 0 {
		p, err := freePorts()
		if err != nil {
			return err
		}
		s.Port, s.CtrlPort = p[0], p[1]
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	}
	s.cmd = exec.Command("swtpm", "socket", "--tpm2",
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.Port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.CtrlPort),
		"--tpmstate", "dir="+s.Dir,
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+filepath.Join(s.Dir, "swtpm.log")+",level=1")
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("swtpm: %w", err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "swtpm.log"))
			return fmt.Errorf("swtpm exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return errors.New("swtpm: data port not accepting connections after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills swtpm and waits for it to exit. The state directory stays
// until the test ends.
func (s *TPM) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart kills swtpm and starts it again on the same ports and state, as
// a TPM reset: persistent objects stay, transient objects and sessions are
// gone.
func (s *TPM) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the old ports may be in TIME_WAIT
	}
}

// Tool runs a tpm2-tools command against this swtpm and returns its output.
// swtpm serves one connection at a time: no Device may be open on it.
// Without tpm2-tools the test is skipped, or fails when CI=true.
func (s *TPM) Tool(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath(name); err != nil {
		missing = name + " not found"
	}
	devicetest.Need(t, devicetest.TPM2Tools, missing, "apt-get install tpm2-tools")
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TPM2TOOLS_TCTI="+s.TCTI())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// freePorts returns two consecutive loopback ports that were free a moment
// ago (the swtpm TCTI of tpm2-tools takes the control port to be the data
// port plus one).
func freePorts() ([2]int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return [2]int{}, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		_ = l.Close()
		if err == nil {
			_ = l2.Close()
			return [2]int{p, p + 1}, nil
		}
	}
	return [2]int{}, errors.New("swtpm: no two consecutive free loopback ports")
}
