//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/internal/devicetest"
	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/offload"
)

func wait[T any](t testing.TB, f *offload.Future[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f.Wait(ctx)
}

func hashOf(h crypto.Hash, msg []byte) []byte {
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// verify checks sig over msg with the standard library.
func verify(t *testing.T, pub crypto.PublicKey, msg []byte, opts crypto.SignerOpts, sig []byte) {
	t.Helper()
	h := opts.HashFunc()
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, hashOf(h, msg), sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		var err error
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			err = rsa.VerifyPSS(p, h, hashOf(h, msg), sig, pss)
		} else if h == 0 {
			err = rsa.VerifyPKCS1v15(p, 0, msg, sig)
		} else {
			err = rsa.VerifyPKCS1v15(p, h, hashOf(h, msg), sig)
		}
		if err != nil {
			t.Fatalf("RSA signature does not verify: %v", err)
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(p, msg, sig) {
			t.Fatal("Ed25519 signature does not verify")
		}
	default:
		t.Fatalf("public key %T", pub)
	}
}

func TestSign(t *testing.T) {
	e, keys := sharedEngine(t)
	ctx := context.Background()
	msg := []byte("offcrypt signs on the token")
	rsaPub := keys[offload.KeyRSA].Public().(*rsa.PublicKey)
	for _, tt := range []struct {
		name    string
		kt      offload.KeyType
		opts    crypto.SignerOpts
		message bool // a Message request instead of a Digest one
		pssSalt int  // the salt length the signature must have, for PSS
	}{
		{"p256-sha256", offload.KeyECDSAP256, crypto.SHA256, false, 0},
		{"p256-sha384-message", offload.KeyECDSAP256, crypto.SHA384, true, 0},
		{"p384-sha384", offload.KeyECDSAP384, crypto.SHA384, false, 0},
		{"p384-sha512", offload.KeyECDSAP384, crypto.SHA512, false, 0},
		{"rsa-pkcs1-sha256", offload.KeyRSA, crypto.SHA256, false, 0},
		{"rsa-pkcs1-sha1", offload.KeyRSA, crypto.SHA1, false, 0},
		{"rsa-pkcs1-sha512-message", offload.KeyRSA, crypto.SHA512, true, 0},
		{"rsa-pkcs1-sha256-message", offload.KeyRSA, crypto.SHA256, true, 0},
		{"rsa-pss-auto-message", offload.KeyRSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}, true,
			(rsaPub.N.BitLen()-1+7)/8 - 2 - 32},
		{"rsa-pkcs1-raw", offload.KeyRSA, crypto.Hash(0), false, 0},
		{"rsa-pss-auto", offload.KeyRSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}, false,
			(rsaPub.N.BitLen()-1+7)/8 - 2 - 32},
		{"rsa-pss-equals-hash", offload.KeyRSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, false, 32},
		{"rsa-pss-20", offload.KeyRSA, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA384}, false, 20},
		{"rsa-pss-sha512-message", offload.KeyRSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512}, true, 64},
		{"ed25519", offload.KeyEd25519, crypto.Hash(0), false, 0},
		{"ed25519-message", offload.KeyEd25519, &ed25519.Options{}, true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := keys[tt.kt]
			req := &offload.SignRequest{Key: k, Opts: tt.opts}
			h := tt.opts.HashFunc()
			switch {
			case tt.message:
				req.Message = msg
			case h == 0:
				req.Digest = msg
			default:
				req.Digest = hashOf(h, msg)
			}
			sig, err := wait(t, e.Sign(ctx, req))
			if err != nil {
				t.Fatal(err)
			}
			verify(t, k.Public(), msg, tt.opts, sig)
			if pss, ok := tt.opts.(*rsa.PSSOptions); ok {
				// The salt length must be exactly the resolved one: verifying
				// with it fixed fails otherwise.
				fixed := &rsa.PSSOptions{SaltLength: tt.pssSalt, Hash: pss.Hash}
				if err := rsa.VerifyPSS(rsaPub, h, hashOf(h, msg), sig, fixed); err != nil {
					t.Fatalf("salt length is not %d: %v", tt.pssSalt, err)
				}
			}
		})
	}
	if s := e.Stats().Op(offload.OpSign); s.Completed == 0 || s.InFlight != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestSignBadInput(t *testing.T) {
	e, keys := sharedEngine(t)
	ctx := context.Background()
	aes, err := e.GenerateKey(ctx, offload.KeyAES, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := hashOf(crypto.SHA256, []byte("x"))
	other := offload.NewKey(nil, offload.KeyECDSAP256, 256, keys[offload.KeyECDSAP256].Public(), nil)
	for _, tt := range []struct {
		name string
		req  *offload.SignRequest
		want error
	}{
		{"nil-request", nil, offload.ErrInvalid},
		{"nil-key", &offload.SignRequest{Digest: d, Opts: crypto.SHA256}, offload.ErrInvalid},
		{"aes-key", &offload.SignRequest{Key: aes, Digest: d, Opts: crypto.SHA256}, offload.ErrInvalid},
		{"foreign-key", &offload.SignRequest{Key: other, Digest: d, Opts: crypto.SHA256}, offload.ErrForeignKey},
		{"short-digest", &offload.SignRequest{Key: keys[offload.KeyECDSAP256], Digest: d[:5], Opts: crypto.SHA256}, offload.ErrInvalid},
		{"ed25519ph", &offload.SignRequest{Key: keys[offload.KeyEd25519], Digest: hashOf(crypto.SHA512, d), Opts: crypto.SHA512}, offload.ErrUnsupported},
		{"ed25519ctx", &offload.SignRequest{Key: keys[offload.KeyEd25519], Digest: d, Opts: &ed25519.Options{Context: "c"}}, offload.ErrUnsupported},
		{"pss-salt-too-long", &offload.SignRequest{Key: keys[offload.KeyRSA], Digest: d, Opts: &rsa.PSSOptions{SaltLength: 300, Hash: crypto.SHA256}}, offload.ErrInvalid},
		{"too-large", &offload.SignRequest{Key: keys[offload.KeyEd25519], Message: make([]byte, e.Info().MaxInline+1)}, offload.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wait(t, e.Sign(ctx, tt.req))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("decrypt-with-ec-key", func(t *testing.T) {
		_, err := wait(t, e.Decrypt(ctx, &offload.DecryptRequest{Key: keys[offload.KeyECDSAP256], Ciphertext: d}))
		if !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("hash-and-cipher", func(t *testing.T) {
		if _, err := wait(t, e.Hash(ctx, &offload.HashRequest{Hash: crypto.SHA256, Final: true})); !errors.Is(err, offload.ErrUnsupported) {
			t.Fatalf("hash: %v", err)
		}
		if _, err := wait(t, e.Cipher(ctx, &offload.CipherRequest{Key: aes, Mode: offload.ModeGCM})); !errors.Is(err, offload.ErrInvalid) {
			t.Fatalf("cipher without a nonce: %v", err)
		}
	})
}

func TestDecrypt(t *testing.T) {
	e, keys := sharedEngine(t)
	ctx := context.Background()
	k := keys[offload.KeyRSA]
	pub := k.Public().(*rsa.PublicKey)
	secret := []byte("a 32-byte session key, not more.")

	for _, tt := range []struct {
		name string
		opts *rsa.OAEPOptions
	}{
		{"sha256-label", &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("offcrypt label")}},
		{"sha256", &rsa.OAEPOptions{Hash: crypto.SHA256}},
		{"sha1", &rsa.OAEPOptions{Hash: crypto.SHA1}},
		{"sha1-label", &rsa.OAEPOptions{Hash: crypto.SHA1, Label: []byte("l")}},
		{"sha384-mgf-sha1", &rsa.OAEPOptions{Hash: crypto.SHA384, MGFHash: crypto.SHA1, Label: []byte("offcrypt")}},
	} {
		t.Run("oaep-"+tt.name, func(t *testing.T) {
			ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, secret, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := wait(t, e.Decrypt(ctx, &offload.DecryptRequest{Key: k, Ciphertext: ct, Opts: tt.opts}))
			if err != nil {
				t.Fatal(err)
			}
			if string(pt) != string(secret) {
				t.Fatalf("plaintext %q", pt)
			}
			if len(tt.opts.Label) > 0 {
				wrong := &rsa.OAEPOptions{Hash: tt.opts.Hash, Label: []byte("other")}
				_, err := wait(t, e.Decrypt(ctx, &offload.DecryptRequest{Key: k, Ciphertext: ct, Opts: wrong}))
				if !errors.Is(err, rsa.ErrDecryption) {
					t.Fatalf("wrong label: err = %v, want rsa.ErrDecryption", err)
				}
			}
		})
	}

	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), ct...)
	bad[len(bad)/2] ^= 0x40
	for _, tt := range []struct {
		name    string
		ct      []byte
		opts    crypto.DecrypterOpts
		want    []byte // nil: a random key of len(secret) bytes
		wantErr error
	}{
		{"pkcs1", ct, nil, secret, nil},
		{"pkcs1-opts", ct, &rsa.PKCS1v15DecryptOptions{}, secret, nil},
		{"pkcs1-session-key", ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)}, secret, nil},
		{"pkcs1-session-key-bad", bad, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: len(secret)}, nil, nil},
		{"pkcs1-session-key-wrong-length", ct, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}, nil, nil},
		{"pkcs1-bad", bad, nil, nil, rsa.ErrDecryption},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := wait(t, e.Decrypt(ctx, &offload.DecryptRequest{Key: k, Ciphertext: tt.ct, Opts: tt.opts}))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if string(pt) != string(tt.want) {
					t.Fatalf("plaintext %q", pt)
				}
				return
			}
			o := tt.opts.(*rsa.PKCS1v15DecryptOptions)
			if len(pt) != o.SessionKeyLen || string(pt) == string(secret[:o.SessionKeyLen]) {
				t.Fatalf("want a random %d-byte key, got %x", o.SessionKeyLen, pt)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	e, _ := sharedEngine(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		kt   offload.KeyType
		bits int
		want int
		err  error
	}{
		{"aes-256", offload.KeyAES, 0, 256, nil},
		{"aes-128", offload.KeyAES, 128, 128, nil},
		{"aes-100", offload.KeyAES, 100, 0, offload.ErrInvalid},
		{"p256-wrong-bits", offload.KeyECDSAP256, 384, 0, offload.ErrInvalid},
		{"rsa-1024", offload.KeyRSA, 1024, 0, offload.ErrInvalid},
		{"ed448", offload.KeyEd448, 0, 0, offload.ErrUnsupported},
		{"mldsa", offload.KeyMLDSA65, 0, 0, offload.ErrUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.GenerateKey(ctx, tt.kt, tt.bits)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || k != nil {
					t.Fatalf("key %v, err %v; want %v", k, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Type() != tt.kt || k.Bits() != tt.want {
				t.Fatalf("key %v of %d bits", k.Type(), k.Bits())
			}
		})
	}
	// A generated key is found again by its label and id.
	k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 256)
	if err != nil {
		t.Fatal(err)
	}
	h := k.Handle().(*keyHandle)
	u := &URI{Token: mainToken, Object: h.label, ID: h.id, Type: TypePrivate}
	found, err := e.FindKeyURI(ctx, u)
	if err != nil {
		t.Fatalf("FindKey(%s): %v", u, err)
	}
	if !found.Public().(*ecdsa.PublicKey).Equal(k.Public()) {
		t.Fatal("found key has another public key")
	}
}

// TestOutsideKeys uses keys that pkcs11-tool made (in TestMain).
func TestOutsideKeys(t *testing.T) {
	needHSM(t)
	needPkcs11Tool(t)
	e, _ := sharedEngine(t)
	ctx := context.Background()
	digest := hashOf(crypto.SHA256, []byte("outside"))
	for _, tt := range []struct {
		uri  string
		want offload.KeyType
		err  error
	}{
		{"pkcs11:token=offcrypt;object=ec256;type=private", offload.KeyECDSAP256, nil},
		{"pkcs11:token=offcrypt;id=%01", offload.KeyECDSAP256, nil},
		{"pkcs11:object=ec256;id=%01?module-path=" + softhsmModule, offload.KeyECDSAP256, nil},
		{"pkcs11:token=offcrypt;object=rsa-nopub", offload.KeyRSA, nil},
		{"pkcs11:token=offcrypt;id=%03;type=private", offload.KeyECDSAP384, nil}, // public key from the certificate
		{"pkcs11:token=offcrypt;object=nothing-by-this-name", 0, offload.ErrNotFound},
		{"pkcs11:token=offcrypt;object=ec-orphan", 0, offload.ErrNotFound}, // no public key anywhere
		{"pkcs11:token=offcrypt;id=%01%02", 0, offload.ErrNotFound},
		{"pkcs11:token=another;object=ec256", 0, offload.ErrNotFound},
		{"pkcs11:object=ec256?module-path=/usr/lib/other.so", 0, offload.ErrNotFound},
		{"pkcs11:token=offcrypt", 0, offload.ErrInvalid}, // every private key matches
		{"pkcs11:object=ec256;type=cert", 0, offload.ErrInvalid},
		{"pkcs11:object=ec256;colour=blue", 0, offload.ErrInvalid},
		{"pkcs11:object=ec256;object=ec256", 0, offload.ErrInvalid},
	} {
		t.Run(tt.uri, func(t *testing.T) {
			k, err := e.FindKey(ctx, tt.uri)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || k != nil {
					t.Fatalf("key %v, err %v; want %v", k, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Type() != tt.want {
				t.Fatalf("type %v", k.Type())
			}
			opts := crypto.SignerOpts(crypto.SHA256)
			sig, err := wait(t, e.Sign(ctx, &offload.SignRequest{Key: k, Digest: digest, Opts: opts}))
			if err != nil {
				t.Fatal(err)
			}
			verify(t, k.Public(), []byte("outside"), opts, sig)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	needHSM(t)
	ctx := context.Background()
	junk := filepath.Join(t.TempDir(), "junk.so")
	if err := os.WriteFile(junk, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	var pinCalls int
	slot := ^uint(0) - 7
	for _, tt := range []struct {
		name string
		c    Config
		want error
	}{
		{"wrong-pin", Config{Module: softhsmModule, TokenLabel: authToken, PIN: func(context.Context) ([]byte, error) {
			pinCalls++
			return []byte("0000"), nil
		}}, offload.ErrAuth},
		{"pin-too-long", Config{Module: softhsmModule, TokenLabel: authToken, PIN: pinFunc(strings.Repeat("9", 300))}, offload.ErrAuth},
		{"unknown-token", Config{Module: softhsmModule, TokenLabel: "no-such-token", PIN: pinFunc(mainPIN)}, offload.ErrNotFound},
		{"unknown-serial", Config{Module: softhsmModule, TokenLabel: mainToken, TokenSerial: "nope", PIN: pinFunc(mainPIN)}, offload.ErrNotFound},
		{"unknown-slot", Config{Module: softhsmModule, Slot: &slot, PIN: pinFunc(mainPIN)}, offload.ErrNotFound},
		{"ambiguous-token", Config{Module: softhsmModule, PIN: pinFunc(mainPIN)}, offload.ErrInvalid}, // two initialised tokens
		{"no-module", Config{TokenLabel: mainToken}, offload.ErrInvalid},
		{"missing-module", Config{Module: "/nonexistent/libnothing.so"}, offload.ErrNotFound},
		{"executable", Config{Module: "/bin/true"}, offload.ErrInvalid},
		{"junk-file", Config{Module: junk}, offload.ErrInvalid},
		{"pin-callback-fails", Config{Module: softhsmModule, TokenLabel: mainToken, PIN: func(context.Context) ([]byte, error) {
			return nil, offload.ErrAuth
		}}, offload.ErrAuth},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Open(ctx, tt.c)
			if !errors.Is(err, tt.want) || e != nil {
				if e != nil {
					e.Close()
				}
				t.Fatalf("engine %v, err %v; want %v", e, err, tt.want)
			}
			t.Log(err)
		})
	}
	if pinCalls != 1 {
		t.Fatalf("PIN callback called %d times, want 1", pinCalls)
	}
	// The wrong PIN stays a wrong PIN, and the code is still in the chain.
	_, err := Open(ctx, Config{Module: softhsmModule, TokenLabel: authToken, PIN: pinFunc("0001")})
	var code pkcs11.Error
	if !errors.As(err, &code) || code != pkcs11.CKR_PIN_INCORRECT {
		t.Fatalf("err = %v, want CKR_PIN_INCORRECT in the chain", err)
	}
	// And the right PIN still opens the token: the failures above did not
	// lock it.
	e, err := Open(ctx, Config{Module: softhsmModule, TokenLabel: authToken, PIN: pinFunc(authPIN), MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestInfoFromMechanismList(t *testing.T) {
	tool := needPkcs11Tool(t)
	e, _ := sharedEngine(t)
	out, err := exec.Command(tool, "--module", softhsmModule, "--token-label", mainToken, "-M").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool -M: %v\n%s", err, out)
	}
	listed := func(name string, flag string) bool {
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(strings.TrimSpace(line))
			if len(f) > 0 && strings.TrimSuffix(f[0], ",") == name && strings.Contains(line, flag) {
				return true
			}
		}
		return false
	}
	info := e.Info()
	if info.Name != "pkcs11" || info.MaxInFlight != 4 || info.MaxInline != 32<<10 {
		t.Fatalf("info %+v", info)
	}
	for _, tt := range []struct {
		alg        offload.Algorithm
		mech, flag string
	}{
		{offload.ECDSAP256, "ECDSA", "sign"},
		{offload.RSAPKCS1v15, "RSA-PKCS", "sign"},
		{offload.RSAPSS, "RSA-PKCS-PSS", "sign"},
		{offload.RSAPKCS1v15Decrypt, "RSA-PKCS", "decrypt"},
		{offload.Ed25519, "EDDSA", "sign"},
		{offload.AESGCM, "AES-GCM", "encrypt, decrypt"},
		{offload.AESCBC, "AES-CBC", "encrypt, decrypt"},
		{offload.AESCTR, "AES-CTR", "encrypt, decrypt"},
		{offload.SHA224, "SHA224", "digest"},
		{offload.SHA256, "SHA256", "digest"},
		{offload.SHA384, "SHA384", "digest"},
		{offload.SHA512, "SHA512", "digest"},
	} {
		if got, want := info.Supports(tt.alg), listed(tt.mech, tt.flag); got != want {
			t.Errorf("%v: Supports = %v, but the token lists %s/%s: %v", tt.alg, got, tt.mech, tt.flag, want)
		}
	}
	if got, want := info.Supports(offload.RSAOAEP), listed("RSA-PKCS-OAEP", "decrypt") || listed("RSA-X-509", "decrypt"); got != want {
		t.Errorf("RSA-OAEP: Supports = %v, token lists OAEP or raw RSA: %v", got, want)
	}
	for _, a := range []offload.Algorithm{offload.Ed25519ph, offload.Ed25519ctx, offload.Ed448, offload.MLDSA65} {
		if info.Supports(a) {
			t.Errorf("%v listed", a)
		}
	}
	if !info.Supports(offload.Random) {
		t.Error("Random not listed")
	}
}

func TestRandom(t *testing.T) {
	e, _ := sharedEngine(t)
	ctx := context.Background()
	for _, tt := range []struct {
		n   int
		err error
	}{{0, nil}, {1, nil}, {32, nil}, {32 << 10, nil}, {32<<10 + 1, offload.ErrInvalid}, {-1, offload.ErrInvalid}} {
		b, err := wait(t, e.Random(ctx, &offload.RandomRequest{N: tt.n}))
		if !errors.Is(err, tt.err) || (err == nil && len(b) != tt.n) {
			t.Fatalf("Random(%d) = %d bytes, %v", tt.n, len(b), err)
		}
	}
	a, _ := wait(t, e.Random(ctx, &offload.RandomRequest{N: 32}))
	b, _ := wait(t, e.Random(ctx, &offload.RandomRequest{N: 32}))
	if string(a) == string(b) {
		t.Fatal("two random draws are equal")
	}
}

// block occupies one of e's sessions until release is closed, through the
// same queue as every operation. It waits outside the module's gate, as a
// slow device's call would not: a module called one call at a time (p11-kit's)
// would otherwise let no other session be occupied.
func block(e *Engine, ctx context.Context, started chan<- struct{}, release <-chan struct{}) *offload.Future[[]byte] {
	return submit(e, ctx, offload.OpRandom, true, offload.Call{}, func(w *worker) ([]byte, error) {
		e.mod.leave()
		close(started)
		<-release
		e.mod.enter()
		return w.p.GenerateRandom(w.sh, 8)
	})
}

func TestCancel(t *testing.T) {
	e := openEngine(t, 1)
	k, err := e.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("cancel"))
	sign := func(ctx context.Context, call offload.Call) *offload.Future[[]byte] {
		return e.Sign(ctx, &offload.SignRequest{Call: call, Key: k, Digest: digest, Opts: crypto.SHA256})
	}

	t.Run("waiting-for-a-session", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		holder := block(e, context.Background(), started, release)
		<-started
		if _, err := sign(context.Background(), offload.Call{NoWait: true}).Poll(); !errors.Is(err, offload.ErrBusy) {
			t.Fatalf("NoWait: err = %v, want ErrBusy", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		_, err := wait(t, sign(ctx, offload.Call{}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		close(release)
		if _, err := wait(t, holder); err != nil {
			t.Fatal(err)
		}
		// The session went back: a new request gets it.
		if _, err := wait(t, sign(context.Background(), offload.Call{})); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("while-running", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		f := block(e, ctx, started, release)
		<-started
		cancel()
		if _, err := wait(t, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		// The session is still busy finishing the operation...
		if _, err := sign(context.Background(), offload.Call{NoWait: true}).Poll(); !errors.Is(err, offload.ErrBusy) {
			t.Fatalf("session free while the token works: %v", err)
		}
		// ...and comes back once it is done.
		close(release)
		if _, err := wait(t, sign(context.Background(), offload.Call{})); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("queued-then-cancelled", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		holder := block(e, context.Background(), started, release)
		<-started
		before := e.Stats().Op(offload.OpSign)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		if _, err := wait(t, sign(ctx, offload.Call{})); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		close(release)
		wait(t, holder)
		if _, err := wait(t, sign(context.Background(), offload.Call{})); err != nil {
			t.Fatal(err)
		}
		after := e.Stats().Op(offload.OpSign)
		if after.InFlight != 0 || after.Completed != before.Completed+1 {
			t.Fatalf("stats before %+v after %+v", before, after)
		}
	})
}

func TestCloseWithWaiters(t *testing.T) {
	needHSM(t)
	leaks := leakcheck.Check(t)
	e, err := Open(context.Background(), Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("close"))
	started1, started2, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	h1 := block(e, context.Background(), started1, release)
	h2 := block(e, context.Background(), started2, release)
	<-started1
	<-started2

	const callers = 20
	futures := make(chan *offload.Future[[]byte], callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			futures <- e.Sign(context.Background(), &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256})
		})
	}
	time.Sleep(20 * time.Millisecond) // let the callers queue up behind the two holders
	closed := make(chan error)
	go func() { closed <- e.Close() }()
	for !e.closed.Load() { // Close has begun: what is still waiting must fail
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(futures)
	for _, h := range []*offload.Future[[]byte]{h1, h2} {
		if _, err := wait(t, h); err != nil {
			t.Fatalf("running operation: %v", err)
		}
	}
	var ok, closedErrs int
	for f := range futures {
		sig, err := wait(t, f)
		switch {
		case err == nil:
			if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
				t.Fatal("bad signature")
			}
			ok++
		case errors.Is(err, offload.ErrClosed):
			closedErrs++
		default:
			t.Fatalf("err = %v", err)
		}
	}
	t.Logf("%d signed, %d closed", ok, closedErrs)
	if closedErrs == 0 {
		t.Fatal("no caller saw ErrClosed")
	}
	if _, err := wait(t, e.Random(context.Background(), &offload.RandomRequest{N: 8})); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := e.FindKey(context.Background(), "pkcs11:object=ec256"); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("FindKey after Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	leaks()
}

func TestConcurrentSigns(t *testing.T) {
	e, keys := sharedEngine(t)
	k := keys[offload.KeyECDSAP256]
	pub := k.Public().(*ecdsa.PublicKey)
	const n = 200
	digests := make([][]byte, n)
	futures := make([]*offload.Future[[]byte], n)
	var wg sync.WaitGroup
	for i := range n {
		d := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		digests[i] = d[:]
		wg.Go(func() {
			futures[i] = e.Sign(context.Background(), &offload.SignRequest{Key: k, Digest: digests[i], Opts: crypto.SHA256})
		})
	}
	wg.Wait()
	q := offload.NewQueue()
	for i, f := range futures {
		q.Add(f, i)
	}
	buf := make([]offload.Completion, 32)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := 0
	for q.Len() > 0 {
		m, err := q.Collect(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range buf[:m] {
			i := c.Tag.(int)
			sig, err := futures[i].Poll()
			if err != nil {
				t.Fatalf("sign %d: %v", i, err)
			}
			if !ecdsa.VerifyASN1(pub, digests[i], sig) {
				t.Fatalf("signature %d does not verify", i)
			}
			seen++
		}
	}
	if seen != n {
		t.Fatalf("%d of %d collected", seen, n)
	}
}

// TestSharedModule opens two engines on one module: closing one must not
// finalise the module or log out the other.
func TestSharedModule(t *testing.T) {
	a := openEngine(t, 1)
	b, err := Open(context.Background(), Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	k, err := a.FindKey(context.Background(), "pkcs11:object=ec256")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("still here"))
	sig, err := wait(t, a.Sign(context.Background(), &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256}))
	if err != nil {
		t.Fatalf("sign after the other engine closed: %v", err)
	}
	if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
		t.Fatal("bad signature")
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		code    uint
		decrypt bool
		want    []error
		not     []error
	}{
		{pkcs11.CKR_PIN_INCORRECT, false, []error{offload.ErrAuth}, []error{offload.ErrNotFound}},
		{pkcs11.CKR_PIN_LEN_RANGE, false, []error{offload.ErrAuth}, nil},
		{pkcs11.CKR_USER_NOT_LOGGED_IN, false, []error{offload.ErrAuth}, nil},
		{pkcs11.CKR_KEY_HANDLE_INVALID, false, []error{offload.ErrNotFound}, []error{offload.ErrAuth}},
		{pkcs11.CKR_OBJECT_HANDLE_INVALID, false, []error{offload.ErrNotFound}, nil},
		{pkcs11.CKR_MECHANISM_INVALID, false, []error{offload.ErrUnsupported, errors.ErrUnsupported}, nil},
		{pkcs11.CKR_DATA_LEN_RANGE, false, []error{offload.ErrInvalid}, nil},
		{pkcs11.CKR_ARGUMENTS_BAD, false, []error{offload.ErrInvalid}, nil},
		{pkcs11.CKR_ENCRYPTED_DATA_INVALID, true, []error{rsa.ErrDecryption, offload.ErrInvalid}, nil},
		{pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, true, []error{rsa.ErrDecryption}, nil},
		{pkcs11.CKR_ENCRYPTED_DATA_INVALID, false, []error{offload.ErrInvalid}, []error{rsa.ErrDecryption}},
		{pkcs11.CKR_DEVICE_ERROR, false, nil, []error{offload.ErrAuth, offload.ErrInvalid, offload.ErrNotFound}},
	} {
		t.Run(pkcs11.Error(tt.code).Error(), func(t *testing.T) {
			var err error
			if tt.decrypt {
				err = ckDecryptErr("C_Decrypt", pkcs11.Error(tt.code))
			} else {
				err = ckErr("C_Sign", pkcs11.Error(tt.code))
			}
			err = offload.Wrap(name, offload.OpSign, err)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("%v is not %v", err, w)
				}
			}
			for _, w := range tt.not {
				if errors.Is(err, w) {
					t.Errorf("%v is %v", err, w)
				}
			}
			var code pkcs11.Error
			if !errors.As(err, &code) || uint(code) != tt.code {
				t.Errorf("code not in the chain: %v", err)
			}
			// "pkcs11 sign: C_Sign: CKR_DEVICE_ERROR (0x30)": the name and
			// the code, each said once.
			name := strings.TrimPrefix(pkcs11.Error(tt.code).Error(), fmt.Sprintf("pkcs11: 0x%X: ", tt.code))
			if want := fmt.Sprintf(": %s (0x%X)", name, tt.code); !strings.HasPrefix(err.Error(), "pkcs11 sign: C_") || !strings.HasSuffix(err.Error(), want) {
				t.Errorf("message %q, want \"pkcs11 sign: C_...%s\"", err, want)
			}
		})
	}
}

// TestOpenByURI opens the engine from a URI's query attributes and finds
// the key with the same URI.
func TestOpenByURI(t *testing.T) {
	needHSM(t)
	const uri = "pkcs11:token=offcrypt;object=ec256;type=private?module-path=" + softhsmModule + "&pin-value=" + mainPIN + "&max-sessions=2"
	u, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFromURI(u)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Info().MaxInFlight != 2 {
		t.Fatalf("MaxInFlight %d", e.Info().MaxInFlight)
	}
	k, err := e.FindKeyURI(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("uri"))
	sig, err := wait(t, e.Sign(context.Background(), &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256}))
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
		t.Fatal("bad signature")
	}
}

// TestThreadsWithManyCallers checks the point of bounding the goroutines
// inside the module by the sessions: thousands of waiting callers cost
// goroutines, not OS threads, whether they hand their requests to the
// workers or ask to run them on their own goroutines (Call.Inline).
func TestThreadsWithManyCallers(t *testing.T) {
	e := openEngine(t, 2)
	k, err := e.GenerateKey(context.Background(), offload.KeyECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("threads"))
	threads := pprof.Lookup("threadcreate")
	for _, call := range []offload.Call{{}, {Inline: true}} {
		t.Run(fmt.Sprintf("inline=%v", call.Inline), func(t *testing.T) {
			before := threads.Count()
			const callers = 2000
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for range callers {
				wg.Go(func() {
					_, err := e.Sign(context.Background(), &offload.SignRequest{Call: call, Key: k, Digest: digest, Opts: crypto.SHA256}).Wait(context.Background())
					if err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			made := threads.Count() - before
			limit := runtime.GOMAXPROCS(0) + 2 + 16
			t.Logf("%d callers: %d new OS threads (limit %d)", callers, made, limit)
			if made > limit {
				t.Fatalf("%d OS threads created for %d callers, want at most %d", made, callers, limit)
			}
		})
	}
}

// needPkcs11Tool returns pkcs11-tool's path, skipping the test when OpenSC is
// not installed, except in CI, where it must be.
func needPkcs11Tool(t *testing.T) string {
	t.Helper()
	tool, err := exec.LookPath("pkcs11-tool")
	missing := ""
	if err != nil {
		missing = "pkcs11-tool not found"
	}
	devicetest.Need(t, devicetest.PKCS11Tool, missing, "apt-get install opensc")
	return tool
}
