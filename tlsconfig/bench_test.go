package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// BenchmarkHandshake measures full TLS 1.3 handshakes over loopback TCP
// (client and server in this process, no resumption) with the server's key
// held by crypto/tls directly and with the same key in the soft engine
// behind tlsconfig.Server. Compare the two with -count and the handshakes/s
// metric; the ratio is the figure that matters, not either number.
func BenchmarkHandshake(b *testing.B) {
	p := newPKI(b)
	for _, kind := range []keyKind{kP256, kRSA} {
		priv := stdKey(kind)
		leaf := p.leaf(b, priv.Public(), "localhost")
		direct := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf}, PrivateKey: priv}}}

		eng := newEngine(b, soft0)
		cert, err := tlsconfig.Certificate([][]byte{leaf}, offloaded(b, eng, priv, false))
		if err != nil {
			b.Fatal(err)
		}
		offl := tlsconfig.Server(cert)

		for _, side := range []struct {
			name string
			cfg  *tls.Config
		}{{"direct", direct}, {"soft", offl}} {
			b.Run(string(kind)+"/"+side.name, func(b *testing.B) {
				benchHandshakes(b, side.cfg, &tls.Config{RootCAs: p.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
			})
		}
	}
}

func benchHandshakes(b *testing.B, srv, cli *tls.Config) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := tls.Server(c, srv)
				if tc.HandshakeContext(context.Background()) == nil {
					tc.Write([]byte{1})
				}
			})
		}
	})
	defer func() {
		ln.Close()
		testwait.Group(b, &wg, "the benchmark server's connections to end")
	}()
	addr := ln.Addr().String()
	b.ResetTimer()
	for b.Loop() {
		if err := handshake1(addr, cli); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

func handshake1(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	var one [1]byte
	_, err = c.Read(one[:])
	return err
}
