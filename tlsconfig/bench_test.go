package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"testing"

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
	addr, _ := serve(b, srv)
	b.ResetTimer()
	for b.Loop() {
		if _, err := dial(context.Background(), addr, cli); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}
