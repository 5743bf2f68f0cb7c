//go:build cgo

package pkcs11

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/softhsm"
	"github.com/offcrypt/offcrypt/offload"
)

// The test binary's SoftHSM2: one configuration and token directory for the
// whole process, because SoftHSM reads SOFTHSM2_CONF at C_Initialize and a
// module is initialised once per process. TestMain makes it and sets
// SOFTHSM2_CONF for the process (t.Setenv would be undone after one test,
// while a later C_Initialize reads it again).
const (
	softhsmModule = softhsm.Module
	mainToken     = "offcrypt" // keys made by pkcs11-tool live here
	mainPIN       = "1234"
	authToken     = "authtest" // the wrong-PIN test's own token
	authPIN       = "5678"
	remoteToken   = "remote" // the token p11-kit's server exports
	remotePIN     = "4321"
)

var hsm struct {
	dir     string
	missing string // why SoftHSM2 cannot be used here; "" when it can
	setup   error  // a failure while preparing tokens
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if n := os.Getenv(restartChildEnv); n != "" {
		// A child of TestP11KitRestartUnderLoad: the parent's SoftHSM2
		// and p11-kit server, none of the tests.
		sessions, err := strconv.Atoi(n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s=%q: %v\n", restartChildEnv, n, err)
			return 2
		}
		return runRestartChild(sessions)
	}
	if err := setupSoftHSM(); err != nil {
		hsm.setup = err
	}
	// The shared engine and p11-kit's server go before the leak check.
	code := leakcheck.Run(m, closeShared, stopP11Server)
	if hsm.dir != "" {
		os.RemoveAll(hsm.dir)
	}
	return code
}

func setupSoftHSM() error {
	if hsm.missing = softhsm.Missing(); hsm.missing != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "offcrypt-pkcs11-")
	if err != nil {
		return err
	}
	hsm.dir = dir
	conf, err := softhsm.Setup(dir, softhsm.Token{Label: mainToken, PIN: mainPIN},
		softhsm.Token{Label: authToken, PIN: authPIN}, softhsm.Token{Label: remoteToken, PIN: remotePIN})
	if err != nil {
		return err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		return nil
	}
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		return nil // the tests that need it skip
	}
	p11 := func(args ...string) error {
		return run(tool, append([]string{"--module", softhsmModule, "--token-label", mainToken, "--login", "--pin", mainPIN}, args...)...)
	}
	if err := p11("--keypairgen", "--key-type", "EC:prime256v1", "--label", "ec256", "--id", "01"); err != nil {
		return err
	}
	// An RSA key whose public object is deleted: its public half must come
	// from the private object's modulus.
	if err := p11("--keypairgen", "--key-type", "rsa:2048", "--label", "rsa-nopub", "--id", "02"); err != nil {
		return err
	}
	if err := p11("--delete-object", "--type", "pubkey", "--id", "02"); err != nil {
		return err
	}
	// An EC key with a certificate instead of a public key object: its
	// public half must come from the certificate.
	if err := p11("--keypairgen", "--key-type", "EC:secp384r1", "--label", "ec-cert", "--id", "03"); err != nil {
		return err
	}
	// (pkcs11-tool 0.23 cannot read EC public keys under OpenSSL 3, so the
	// engine reads it while the public object is still there, and closes:
	// the module is finalised again before the tests start.)
	certDER, err := certFor(&URI{Token: mainToken, ID: []byte{3}})
	if err != nil {
		return err
	}
	certFile := filepath.Join(dir, "cert.der")
	if err := os.WriteFile(certFile, certDER, 0o600); err != nil {
		return err
	}
	if err := p11("--write-object", certFile, "--type", "cert", "--id", "03", "--label", "ec-cert"); err != nil {
		return err
	}
	if err := p11("--delete-object", "--type", "pubkey", "--id", "03"); err != nil {
		return err
	}
	// An EC private key with neither: SoftHSM's private EC objects carry no
	// CKA_EC_POINT, so it has no public half to offer.
	if err := p11("--keypairgen", "--key-type", "EC:prime256v1", "--label", "ec-orphan", "--id", "04"); err != nil {
		return err
	}
	return p11("--delete-object", "--type", "pubkey", "--id", "04")
}

// certFor makes a certificate for the public key of the key u names,
// signed by a throwaway issuer.
func certFor(u *URI) ([]byte, error) {
	ctx := context.Background()
	e, err := Open(ctx, Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 1})
	if err != nil {
		return nil, err
	}
	k, err := e.FindKeyURI(ctx, u)
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	pub := k.Public()
	issuer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "ec-cert"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, issuer)
}

// needHSM skips (or, in CI, fails) a test when SoftHSM2 is not installed.
func needHSM(t testing.TB) {
	t.Helper()
	devicetest.Need(t, devicetest.SoftHSM2, hsm.missing, "apt-get install softhsm2")
	if hsm.setup != nil {
		t.Fatalf("setting up SoftHSM2: %v", hsm.setup)
	}
}

func pinFunc(pin string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return []byte(pin), nil }
}

// openEngine opens an engine on the main token and closes it when t ends.
func openEngine(t testing.TB, maxInFlight int) *Engine {
	t.Helper()
	needHSM(t)
	e, err := Open(context.Background(), Config{
		Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: maxInFlight,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// shared is an engine, and keys generated on it, that many tests use:
// generating RSA keys on SoftHSM takes a while.
var shared struct {
	once sync.Once
	eng  *Engine
	keys map[offload.KeyType]*offload.Key
	err  error
}

func sharedEngine(t testing.TB) (*Engine, map[offload.KeyType]*offload.Key) {
	t.Helper()
	needHSM(t)
	shared.once.Do(func() {
		ctx := context.Background()
		e, err := Open(ctx, Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 4})
		if err != nil {
			shared.err = err
			return
		}
		shared.eng = e
		shared.keys = make(map[offload.KeyType]*offload.Key)
		for _, kt := range []offload.KeyType{offload.KeyECDSAP256, offload.KeyECDSAP384, offload.KeyRSA, offload.KeyEd25519} {
			k, err := e.GenerateKey(ctx, kt, 0)
			if err != nil {
				shared.err = fmt.Errorf("GenerateKey(%v): %w", kt, err)
				return
			}
			shared.keys[kt] = k
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.eng, shared.keys
}

func closeShared() {
	if shared.eng != nil {
		shared.eng.Close()
	}
}
