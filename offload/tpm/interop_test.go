package tpm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
)

func TestWrongAuthAsksOnce(t *testing.T) {
	d, _ := openSwtpm(t, Config{})
	ctx := testCtx(t)
	k, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256, Auth: func(context.Context) ([]byte, error) { return []byte("right"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("auth"))
	if err := signAndVerify(ctx, d, k, digest[:]); err != nil {
		t.Fatalf("with the right auth: %v", err)
	}
	pemBytes, err := k.KeyFile()
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	wrong, err := d.LoadKeyFile(ctx, pemBytes, func(context.Context) ([]byte, error) { calls++; return []byte("wrong"), nil })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := signAndVerify(ctx, d, wrong, digest[:]); !errors.Is(err, offload.ErrAuth) {
			t.Fatalf("sign #%d with the wrong auth: %v, want ErrAuth", i, err)
		}
	}
	if calls != 1 {
		t.Fatalf("auth callback called %d times, want 1", calls)
	}
	right, err := d.LoadKeyFile(ctx, pemBytes, func(context.Context) ([]byte, error) { return []byte("right"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := signAndVerify(ctx, d, right, digest[:]); err != nil {
		t.Fatalf("key file with the right auth: %v", err)
	}
}

// TestToolsKeys uses keys made by tpm2-tools: by persistent handle, and a
// key file written by tpm2-openssl.
func TestToolsKeys(t *testing.T) {
	dir := t.TempDir()
	d, _ := openSwtpm(t, Config{}, func(s *swtpm.TPM) {
		s.Tool(t, dir, "tpm2_createprimary", "-C", "o", "-G", "ecc256:ecdsa-sha256", "-c", "p.ctx",
			"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign")
		s.Tool(t, dir, "tpm2_evictcontrol", "-C", "o", "-c", "p.ctx", "0x81000010")
		s.Tool(t, dir, "tpm2_flushcontext", "-t")
		s.Tool(t, dir, "tpm2_createprimary", "-C", "o", "-G", "rsa2048", "-c", "r.ctx",
			"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|decrypt", "-p", "hunter2")
		s.Tool(t, dir, "tpm2_evictcontrol", "-C", "o", "-c", "r.ctx", "0x81000011")
		s.Tool(t, dir, "tpm2_flushcontext", "-t")
		openssl(t, s, dir, "genpkey", "-provider", "tpm2", "-algorithm", "EC", "-pkeyopt", "group:P-256", "-out", "ossl.pem")
	})
	ctx := testCtx(t)
	digest := sha256.Sum256([]byte("made by tpm2-tools"))
	ec, err := d.PersistentKey(ctx, 0x81000010, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := signAndVerify(ctx, d, ec, digest[:]); err != nil {
		t.Fatalf("persistent ECDSA key: %v", err)
	}
	rk, err := d.PersistentKey(ctx, 0x81000011, func(context.Context) ([]byte, error) { return []byte("hunter2"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := signAndVerify(ctx, d, rk, digest[:]); err != nil {
		t.Fatalf("persistent RSA key with auth: %v", err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ossl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := d.LoadKeyFile(ctx, pemBytes, nil)
	if err != nil {
		t.Fatalf("tpm2-openssl's key file: %v", err)
	}
	if err := signAndVerify(ctx, d, k, digest[:]); err != nil {
		t.Fatalf("tpm2-openssl's key: %v", err)
	}
}

// TestKeyFileSignsThroughOpenSSL writes a key file here and signs with it
// through OpenSSL's tpm2 provider; openssl verifies.
func TestKeyFileSignsThroughOpenSSL(t *testing.T) {
	s := swtpm.Start(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	d, err := OpenDevice(ctx, Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []KeySpec{{Type: offload.KeyECDSAP256}, {Type: offload.KeyRSA}} {
		k, err := d.CreateKey(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := k.KeyFile()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, spec.Type.String()+".pem"), pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil { // swtpm serves one client at a time
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "msg"), []byte("signed by a key file offcrypt wrote"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ECDSA-P256", "RSA"} {
		key := name + ".pem"
		openssl(t, s, dir, "pkey", "-provider", "tpm2", "-provider", "default", "-propquery", "?provider=tpm2", "-in", key, "-pubout", "-out", name+".pub")
		openssl(t, s, dir, "dgst", "-sha256", "-provider", "tpm2", "-provider", "default", "-propquery", "?provider=tpm2", "-sign", key, "-out", name+".sig", "msg")
		out := openssl(t, s, dir, "dgst", "-sha256", "-verify", name+".pub", "-signature", name+".sig", "msg")
		if !strings.Contains(out, "Verified OK") {
			t.Fatalf("%s: openssl says %q", name, out)
		}
	}
}

func TestKeyFileParentNotThisSRK(t *testing.T) {
	d, _ := openSwtpm(t, Config{})
	ctx := testCtx(t)
	k, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := k.KeyFile()
	// Another TPM (its own seeds) cannot load it.
	other, _ := openSwtpm(t, Config{})
	if _, err := other.LoadKeyFile(ctx, pemBytes, nil); !errors.Is(err, offload.ErrInvalid) || !errors.Is(err, tpm2.TPMRCIntegrity) {
		t.Fatalf("key file of another TPM: %v", err)
	}
	if n := len(other.objects); n != 1 { // the SRK alone
		t.Fatalf("%d objects tracked after the failed load", n)
	}
}

func TestSlotsHeldByAnotherClient(t *testing.T) {
	d, s := openSwtpm(t, Config{})
	ctx := testCtx(t)
	// This "other client" fills every slot and goes away without flushing.
	for range 3 {
		if _, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256}); err != nil {
			t.Fatal(err)
		}
	}
	d.disconnect()
	d.objects = nil
	d.closed = true
	if _, err := OpenDevice(ctx, Config{Address: s.Addr}); !errors.Is(err, tpm2.TPMRCObjectMemory) || !strings.Contains(err.Error(), "FlushStale") {
		t.Fatalf("Open on a full TPM: %v", err)
	}
	d2, err := OpenDevice(ctx, Config{Address: s.Addr, FlushStale: true})
	if err != nil {
		t.Fatalf("Open with FlushStale: %v", err)
	}
	defer d2.Close()
	k, err := d2.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(nil)
	if err := signAndVerify(ctx, d2, k, digest[:]); err != nil {
		t.Fatal(err)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	d, s := openSwtpm(t, Config{})
	ctx := testCtx(t)
	k, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyRSA})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := d.StartHash(ctx, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("restart"))
	s.Restart(t)
	// The first command finds the connection gone: a clear error, and
	// the next call reconnects, re-creates the SRK and session and
	// reloads the key.
	err = signAndVerify(ctx, d, k, digest[:])
	if err != nil && !errors.Is(err, ErrTransport) {
		t.Fatalf("first sign after the restart: %v", err)
	}
	if err := signAndVerify(ctx, d, k, digest[:]); err != nil {
		t.Fatalf("sign after reconnecting: %v", err)
	}
	if err := d.UpdateHash(ctx, seq, []byte("x")); !errors.Is(err, ErrObjectLost) {
		t.Fatalf("hash sequence across the restart: %v", err)
	}
}

// openssl runs openssl with the tpm2 provider pointed at s.
func openssl(t *testing.T, s *swtpm.TPM, dir string, args ...string) string {
	t.Helper()
	missing := ""
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so"); err != nil {
		missing = "OpenSSL's tpm2 provider not found"
	}
	devicetest.Need(t, devicetest.TPM2OpenSSL, missing, "apt-get install tpm2-openssl")
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TPM2OPENSSL_TCTI="+s.TCTI())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return string(out)
}
