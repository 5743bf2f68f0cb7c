package tlsconfig_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/tpm"
	"github.com/offcrypt/offcrypt/signer"
	"github.com/offcrypt/offcrypt/tlsconfig"
)

// TestTPMKeysWithCurl: curl completes a TLS 1.3 handshake with an HTTPS
// server whose key was made in a TPM (swtpm, with the engine's encrypted
// session), for an RSA-2048 key (RSA-PSS with salt = hash length, as TLS
// 1.3 needs) and an ECDSA P-256 key.
func TestTPMKeysWithCurl(t *testing.T) {
	curl := needTool(t, "curl")
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		kt   offload.KeyType
		bits int
		want string
	}{
		{"RSA-2048", offload.KeyRSA, 2048, "PSS-SHA-256"},
		{"ECDSA-P256", offload.KeyECDSAP256, 0, "ECDSA-SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := swtpm.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			eng, err := tpm.Open(ctx, tpm.Config{Address: s.Addr})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { eng.Close() })
			key, err := eng.GenerateKey(ctx, tc.kt, tc.bits)
			if err != nil {
				t.Fatal(err)
			}
			sg, err := signer.New(key)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{ContextSigner: sg}
			cert, err := tlsconfig.Certificate([][]byte{p.leaf(t, rec.Public(), "localhost")}, rec)
			if err != nil {
				t.Fatal(err)
			}
			port := httpsServer(t, tlsconfig.Server(cert))
			out, err := run(curl, "-sS", "--fail", "--max-time", "20", "--tlsv1.3", "--tls-max", "1.3",
				"--cacert", p.caFile, "--resolve", "localhost:"+port+":127.0.0.1", "https://localhost:"+port+"/")
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.Contains(out, greeting+" over TLS 1.3") {
				t.Fatalf("curl said %q", out)
			}
			if got := rec.last(); got != tc.want {
				t.Errorf("handshake signed with %s, want %s", got, tc.want)
			}
			if n := eng.Stats().Op(offload.OpSign).Completed; n == 0 {
				t.Error("no signature went through the TPM engine")
			}
		})
	}
}
