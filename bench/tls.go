package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"io"
	"runtime"

	"github.com/offcrypt/offcrypt/cmd/handshake-delay/loopback"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// runTLS measures full TLS 1.3 handshakes per second over loopback, client
// and server in this process: the server's key held by crypto/tls directly
// against the same key in the soft engine behind tlsconfig.Server. Session
// tickets are off, so every handshake is full; GOMAXPROCS clients dial at
// once.
func runTLS(w io.Writer, cfg config) error {
	callers := runtime.GOMAXPROCS(0)
	fmt.Fprintf(w, "### TLS 1.3 full handshakes over loopback: key in soft (tlsconfig.Server) against the key held by crypto/tls (%d clients)\n", callers)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| server key | clients | direct handshakes/s | offcrypt handshakes/s | ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, alg := range []string{"ECDSA P-256", "RSA-2048"} {
		d, o, err := tlsPair(alg, callers, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", alg, err)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.3f |\n", alg, callers, d, o, o/d)
	}
	return nil
}

func tlsPair(alg string, callers int, cfg config) (direct, offc float64, err error) {
	var priv crypto.Signer
	switch alg {
	case "ECDSA P-256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return 0, 0, err
	}
	roots, leaf, err := loopback.Issue("offcrypt bench CA", priv.Public())
	if err != nil {
		return 0, 0, err
	}
	eng, err := soft.New(soft.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer eng.Close()
	key, err := eng.ImportKey(priv)
	if err != nil {
		return 0, 0, err
	}
	s, err := signer.New(key)
	if err != nil {
		return 0, 0, err
	}
	cert, err := tlsconfig.Certificate([][]byte{leaf}, s)
	if err != nil {
		return 0, 0, err
	}
	offCfg := tlsconfig.Server(cert)
	offCfg.SessionTicketsDisabled = true
	directCfg := &tls.Config{
		Certificates:           []tls.Certificate{{Certificate: [][]byte{leaf}, PrivateKey: priv}},
		SessionTicketsDisabled: true,
	}
	cli := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13}

	directAddr, stopDirect, err := loopback.Serve(context.Background(), directCfg)
	if err != nil {
		return 0, 0, err
	}
	defer stopDirect()
	offAddr, stopOff, err := loopback.Serve(context.Background(), offCfg)
	if err != nil {
		return 0, 0, err
	}
	defer stopOff()

	before := eng.Stats().Op(offload.OpSign).Completed
	if err := handshakeOnce(offAddr, cli); err != nil {
		return 0, 0, err
	}
	if eng.Stats().Op(offload.OpSign).Completed == before {
		return 0, 0, fmt.Errorf("a handshake with the offloaded key signed nothing through the engine")
	}
	return compare(func() error { return handshakeOnce(directAddr, cli) },
		func() error { return handshakeOnce(offAddr, cli) }, callers, cfg)
}

// handshakeOnce dials addr, completes a full handshake and reads the
// server's byte.
func handshakeOnce(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if c.ConnectionState().DidResume {
		return fmt.Errorf("handshake resumed a session; the suite measures full handshakes")
	}
	var one [1]byte
	_, err = io.ReadFull(c, one[:])
	return err
}
