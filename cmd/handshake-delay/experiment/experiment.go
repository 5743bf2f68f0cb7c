// Package experiment runs the delayed-engine experiment: a TLS server on
// loopback whose key lives in a software engine that adds a fixed delay to
// every private-key operation, and N Go clients that handshake with it at
// once. With the engine admitting N operations at once ("async"), the batch
// takes about one delay; with one at a time ("stacked", a server whose
// crypto blocks its only thread), about N delays. cmd/handshake-delay prints
// the table, bench/ its delay suite; tests run it small.
//
// It is a helper of those two programs, kept with the program it was
// written for; it is not part of the library and makes no promise of
// compatibility.
package experiment

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/cmd/handshake-delay/loopback"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// Config describes one run.
type Config struct {
	Delay       time.Duration // added to every private-key operation
	N           int           // concurrent handshakes
	MaxInFlight int           // the engine's in-flight limit
	Alg         string        // "ecdsa" (P-256) or "rsa" (2048 bits)
	Mode        string        // a label for the result
}

// Result is what one run measured.
type Result struct {
	Config
	Wall        time.Duration   // from the first dial to the last handshake's end
	PeakFlight  int64           // the most signatures the engine had in flight at once
	Signed      uint64          // signatures the engine completed
	OK          int             // handshakes that succeeded
	FirstErr    error           // the first failed handshake's error, if any
	Handshake50 time.Duration   // median client handshake time
	HandshakeMx time.Duration   // slowest client handshake time
	Handshakes  []time.Duration // every client handshake's time, failed ones included, in the order they started
}

// Key makes a private key for alg: "ecdsa" (P-256) or "rsa" (2048 bits).
func Key(alg string) (crypto.Signer, error) {
	switch alg {
	case "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("experiment: %w: algorithm %q (want ecdsa or rsa)", offload.ErrInvalid, alg)
}

// Run runs the experiment once with priv as the server's key (a fresh
// engine each time, so the statistics are the run's own). It fails only
// when the setup fails; failed handshakes are counted in the result.
func Run(ctx context.Context, c Config, priv crypto.Signer) (Result, error) {
	res := Result{Config: c}
	if c.N < 1 || c.MaxInFlight < 1 || c.Delay < 0 {
		return res, fmt.Errorf("experiment: %w: N %d, MaxInFlight %d, Delay %v", offload.ErrInvalid, c.N, c.MaxInFlight, c.Delay)
	}
	eng, err := soft.New(soft.Options{Latency: c.Delay, MaxInFlight: c.MaxInFlight})
	if err != nil {
		return res, err
	}
	defer eng.Close()
	key, err := eng.ImportKey(priv)
	if err != nil {
		return res, err
	}
	s, err := signer.New(key)
	if err != nil {
		return res, err
	}
	roots, leaf, err := loopback.Issue("handshake-delay CA", priv.Public())
	if err != nil {
		return res, err
	}
	cert, err := tlsconfig.Certificate([][]byte{leaf}, s)
	if err != nil {
		return res, err
	}

	addr, stop, err := loopback.Serve(ctx, tlsconfig.Server(cert))
	if err != nil {
		return res, err
	}
	defer stop()

	cliCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	var (
		ok       atomic.Int64
		mu       sync.Mutex
		firstErr error
		times    = make([]time.Duration, c.N)
		cli      sync.WaitGroup
	)
	start := time.Now()
	for i := range c.N {
		cli.Go(func() {
			t0 := time.Now()
			err := handshake(ctx, addr, cliCfg)
			times[i] = time.Since(t0)
			if err == nil {
				ok.Add(1)
				return
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		})
	}
	cli.Wait()
	res.Wall = time.Since(start)
	st := eng.Stats().Op(offload.OpSign)
	res.PeakFlight = st.MaxInFlight
	res.Signed = st.Completed
	res.OK = int(ok.Load())
	res.FirstErr = firstErr
	res.Handshake50, res.HandshakeMx = quantiles(times)
	res.Handshakes = times
	return res, nil
}

// handshake dials addr, completes a handshake and reads the server's byte.
func handshake(ctx context.Context, addr string, cfg *tls.Config) error {
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		return fmt.Errorf("read after handshake: %w", err)
	}
	return nil
}

func quantiles(d []time.Duration) (p50, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ { // insertion sort: N is small
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2], s[len(s)-1]
}

// ErrIncomplete reports a run in which some handshake failed.
var ErrIncomplete = errors.New("experiment: some handshakes failed")

// Check returns an error wrapping ErrIncomplete, with the first failure,
// when not every handshake of r succeeded.
func (r Result) Check() error {
	if r.OK == r.N {
		return nil
	}
	return fmt.Errorf("%w: %s: %d of %d ok; first error: %v", ErrIncomplete, r.Mode, r.OK, r.N, r.FirstErr)
}
