package tlsconfig_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/internal/testwait"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// needTool returns the path of a command the test runs, skipping the test
// when it is missing, except in CI, where it must be installed.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	missing := ""
	if err != nil {
		missing = name + " not found"
	}
	devicetest.Need(t, devicetest.Peers, missing, "apt-get install curl openssl")
	return path
}

const greeting = "hello from an offloaded key"

// httpsServer serves greeting over HTTPS on a loopback port with cfg.
func httpsServer(t *testing.T, cfg *tls.Config) (port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s over %s\n", greeting, tls.VersionName(r.TLS.Version))
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		testwait.Recv(t, done, "the HTTPS server to stop")
	})
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port
}

// run runs a command with empty stdin and a bound on its life.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(nil)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRealPeers: curl and openssl s_client complete handshakes with an
// HTTPS server whose key lives in the soft engine, over TLS 1.2 and 1.3,
// for every key type TLS uses, and each handshake's signature went through
// the engine with the handshake's context and the expected scheme.
func TestRealPeers(t *testing.T) {
	curl := needTool(t, "curl")
	openssl := needTool(t, "openssl")
	p := newPKI(t)

	type keyCase struct {
		kind      keyKind
		decrypter bool
		// want13 is the scheme TLS 1.3 must use; want12OpenSSL the scheme
		// TLS 1.2 must use when openssl offers sigalgs12 only.
		want13, want12OpenSSL string
		sigalgs12             string
	}
	keys := []keyCase{
		{kind: kP256, want13: "ECDSA-SHA-256", want12OpenSSL: "ECDSA-SHA-256", sigalgs12: "ECDSA+SHA256"},
		{kind: kP384, want13: "ECDSA-SHA-384", want12OpenSSL: "ECDSA-SHA-384", sigalgs12: "ECDSA+SHA384"},
		{kind: kRSA, want13: "PSS-SHA-256", want12OpenSSL: "PKCS1-SHA-256", sigalgs12: "RSA+SHA256"},
		{kind: kRSA, decrypter: true, want13: "PSS-SHA-256", want12OpenSSL: "PKCS1-SHA-384", sigalgs12: "RSA+SHA384"},
		{kind: kEd25519, want13: "Ed25519", want12OpenSSL: "Ed25519", sigalgs12: "ed25519"},
	}
	for _, kc := range keys {
		name := string(kc.kind)
		if kc.decrypter {
			name += "/Decrypter"
		}
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t, soft0)
			rec := &recorder{ContextSigner: offloaded(t, eng, stdKey(kc.kind), kc.decrypter)}
			cert, err := tlsconfig.Certificate([][]byte{p.leaf(t, rec.Public(), "localhost")}, rec)
			if err != nil {
				t.Fatal(err)
			}
			port := httpsServer(t, tlsconfig.Server(cert))

			type clientCase struct {
				name string
				cmd  []string
				vers string
				want string // scheme the handshake must use, "" to only log it
			}
			curlArgs := []string{"-sS", "--fail", "--max-time", "20", "--cacert", p.caFile,
				"--resolve", "localhost:" + port + ":127.0.0.1", "https://localhost:" + port + "/"}
			sslArgs := []string{"s_client", "-connect", "127.0.0.1:" + port, "-servername", "localhost",
				"-CAfile", p.caFile, "-verify_return_error", "-brief"}
			clients := []clientCase{
				{"curl/TLS1.2", append([]string{curl, "--tlsv1.2", "--tls-max", "1.2"}, curlArgs...), "TLS 1.2", ""},
				{"curl/TLS1.3", append([]string{curl, "--tlsv1.3", "--tls-max", "1.3"}, curlArgs...), "TLS 1.3", kc.want13},
				{"openssl/TLS1.2", append([]string{openssl}, append(sslArgs, "-tls1_2")...), "TLSv1.2", ""},
				{"openssl/TLS1.2/" + kc.sigalgs12, append([]string{openssl}, append(sslArgs, "-tls1_2", "-sigalgs", kc.sigalgs12)...), "TLSv1.2", kc.want12OpenSSL},
				{"openssl/TLS1.3", append([]string{openssl}, append(sslArgs, "-tls1_3")...), "TLSv1.3", kc.want13},
			}
			for _, cc := range clients {
				t.Run(cc.name, func(t *testing.T) {
					before := eng.Stats().Op(offload.OpSign)
					out, err := run(cc.cmd[0], cc.cmd[1:]...)
					if err != nil {
						t.Fatalf("%s: %v\n%s", strings.Join(cc.cmd, " "), err, out)
					}
					if strings.HasPrefix(cc.name, "curl") {
						if !strings.Contains(out, greeting+" over "+cc.vers) {
							t.Fatalf("curl said %q", out)
						}
					} else if !strings.Contains(out, "Verification: OK") || !strings.Contains(out, "Protocol version: "+cc.vers) {
						t.Fatalf("openssl said:\n%s", out)
					}
					after := eng.Stats().Op(offload.OpSign)
					if after.Completed <= before.Completed {
						t.Fatalf("no signature went through the engine: completed %d -> %d", before.Completed, after.Completed)
					}
					got := rec.last()
					if cc.want != "" && got != cc.want {
						t.Errorf("handshake signed with %s, want %s", got, cc.want)
					}
					rec.mu.Lock()
					ctx := rec.ctxs[len(rec.ctxs)-1]
					rec.mu.Unlock()
					if ctx.Value(http.ServerContextKey) == nil {
						t.Error("the engine did not get the handshake's context")
					}
					t.Logf("signed with %s; engine signatures %d -> %d", got, before.Completed, after.Completed)
				})
			}
		})
	}
}

// TestMutualTLS: an offloaded client key authenticates to openssl s_server
// -Verify, over TLS 1.2 and 1.3.
func TestMutualTLS(t *testing.T) {
	openssl := needTool(t, "openssl")
	p := newPKI(t)

	// The server's key is an ordinary one, in a file for openssl.
	srvPriv := stdKey(kP256)
	srvCert := filepath.Join(p.pemDir, "server.pem")
	srvKey := filepath.Join(p.pemDir, "server.key")
	writePEM(t, srvCert, "CERTIFICATE", p.leaf(t, srvPriv.Public(), "localhost"))
	writePEM(t, srvKey, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(srvPriv)))

	for _, kind := range []keyKind{kP256, kRSA, kEd25519} {
		for _, vers := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(fmt.Sprintf("%s/%s", kind, tls.VersionName(vers)), func(t *testing.T) {
				addr := startSServer(t, openssl, "-Verify", "1", "-CAfile", p.caFile,
					"-cert", srvCert, "-key", srvKey, "-www")

				eng := newEngine(t, soft0)
				rec := &recorder{ContextSigner: offloaded(t, eng, stdKey(kind), false)}
				cert, err := tlsconfig.Certificate([][]byte{p.leaf(t, rec.Public(), "client.test")}, rec)
				if err != nil {
					t.Fatal(err)
				}
				cfg := &tls.Config{
					RootCAs:              p.pool,
					ServerName:           "localhost",
					MinVersion:           vers,
					MaxVersion:           vers,
					GetClientCertificate: tlsconfig.ClientCertificate(cert),
				}
				type key struct{}
				ctx := context.WithValue(context.Background(), key{}, "mtls")
				c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				// TLS 1.3 reports a refused client certificate only at the
				// first read; -www answers a GET with a status page.
				if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(c)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("read: %v (got %q)", err, body)
				}
				if !bytes.Contains(body, []byte("200 ok")) {
					t.Fatalf("s_server answered %q", body)
				}
				if n := eng.Stats().Op(offload.OpSign).Completed; n != 1 {
					t.Errorf("engine completed %d signatures, want 1", n)
				}
				rec.mu.Lock()
				gotCtx := rec.ctxs[0]
				rec.mu.Unlock()
				if gotCtx.Value(key{}) != "mtls" {
					t.Error("the engine did not get the handshake's context")
				}
				t.Logf("client signed with %s", rec.last())
			})
		}
	}
}

// startSServer starts openssl s_server on a free loopback port, waits until
// it accepts connections and stops it at cleanup.
func startSServer(t *testing.T, openssl string, args ...string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(openssl, append([]string{"s_server", "-accept", addr}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Stdin = nil
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			testwait.Recv(t, exited, "openssl s_server to exit once killed")
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			select {
			case err := <-exited:
				exited <- err
				if attempt < 3 && strings.Contains(out.String(), "in use") {
					goto again
				}
				t.Fatalf("s_server exited: %v\n%s", err, out.String())
			default:
			}
			// s_server shrugs off a connection that closes without a
			// handshake and goes on serving.
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return addr
			}
			if time.Now().After(deadline) {
				t.Fatalf("s_server did not start listening\n%s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	again:
	}
}
