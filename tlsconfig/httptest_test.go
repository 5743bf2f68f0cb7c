package tlsconfig_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// TestHTTPTestServer: httptest's StartTLS fills an empty Certificates with
// its own certificate, which crypto/tls serves to clients that send no
// SNI. A configuration from Server keeps the offloaded key for every
// client: one connecting by IP address (no SNI) and one naming the server.
// The one that names the server signs with the handshake's context (the
// http.Server's connection context, which carries http.ServerContextKey).
func TestHTTPTestServer(t *testing.T) {
	p := newPKI(t)
	eng := newEngine(t, soft0)
	rec := &recorder{ContextSigner: offloaded(t, eng, stdKey(kP256), false)}
	cert := certFor(t, p, rec, "127.0.0.1", "localhost")

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = tlsconfig.Server(cert)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		serverName  string // "" connects by IP: no SNI
		wantContext bool
	}{
		{"by IP, no SNI", "", false},
		{"with SNI", "localhost", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sni string
			cfg := &tls.Config{RootCAs: p.pool, ServerName: tt.serverName}
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				sni = cs.ServerName
				return nil
			}
			tr := &http.Transport{TLSClientConfig: cfg}
			defer tr.CloseIdleConnections()
			signed := eng.Stats().Op(offload.OpSign).Completed
			resp, err := (&http.Client{Transport: tr}).Get("https://" + u.Host)
			if err != nil {
				t.Fatalf("GET by %s: %v (served a certificate other than the offloaded one?)", u.Host, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "ok" {
				t.Fatalf("body %q, %v", body, err)
			}
			if sni != tt.serverName {
				t.Errorf("client sent SNI %q, want %q", sni, tt.serverName)
			}
			if got := resp.TLS.PeerCertificates[0].Raw; string(got) != string(cert.Leaf.Raw) {
				t.Error("server sent a certificate other than the offloaded key's")
			}
			if n := eng.Stats().Op(offload.OpSign).Completed - signed; n != 1 {
				t.Errorf("engine signed %d times for one handshake, want 1", n)
			}
			rec.mu.Lock()
			ctx := rec.ctxs[len(rec.ctxs)-1]
			rec.mu.Unlock()
			if got := ctx.Value(http.ServerContextKey) != nil; got != tt.wantContext {
				t.Errorf("signature made with the handshake's context: %v, want %v", got, tt.wantContext)
			}
		})
	}
}
