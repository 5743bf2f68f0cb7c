package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
)

// openSwtpm starts a swtpm and opens a Device on it, closed when t ends.
// Setup, when given, runs first (tpm2-tools cannot reach a swtpm that
// serves a Device).
func openSwtpm(t *testing.T, cfg Config, setup ...func(*swtpm.TPM)) (*Device, *swtpm.TPM) {
	t.Helper()
	s := swtpm.Start(t)
	for _, f := range setup {
		f(s)
	}
	cfg.Address = s.Addr
	d, err := OpenDevice(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d, s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestSignAndDecryptOnSwtpm(t *testing.T) {
	for _, enc := range []bool{true, false} {
		name := "session"
		if !enc {
			name = "no-session"
		}
		t.Run(name, func(t *testing.T) {
			d, _ := openSwtpm(t, Config{NoParameterEncryption: !enc})
			ctx := testCtx(t)
			testKeys(t, ctx, d)
		})
	}
}

func testKeys(t *testing.T, ctx context.Context, d *Device) {
	msg := []byte("offcrypt signs through a TPM")
	for _, tc := range []struct {
		spec KeySpec
		hash crypto.Hash
	}{
		{KeySpec{Type: offload.KeyECDSAP256}, crypto.SHA256},
		{KeySpec{Type: offload.KeyECDSAP384}, crypto.SHA384},
		{KeySpec{Type: offload.KeyRSA, Bits: 2048}, crypto.SHA256},
		{KeySpec{Type: offload.KeyRSA, Bits: 3072}, crypto.SHA384},
	} {
		t.Run(tc.spec.Type.String(), func(t *testing.T) {
			k, err := d.CreateKey(ctx, tc.spec)
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			defer d.Forget(ctx, k)
			h := tc.hash.New()
			h.Write(msg)
			digest := h.Sum(nil)
			switch pub := k.Public().(type) {
			case *ecdsa.PublicKey:
				for i := range 3 { // the first ECDSA sign on a fresh swtpm answers RETRY
					r, s, err := d.SignECDSA(ctx, k, tc.hash, digest)
					if err != nil {
						t.Fatalf("SignECDSA #%d: %v", i, err)
					}
					if !ecdsa.Verify(pub, digest, r, s) {
						t.Fatalf("SignECDSA #%d: signature does not verify", i)
					}
				}
			case *rsa.PublicKey:
				if k.Bits() != tc.spec.Bits {
					t.Fatalf("Bits = %d, want %d", k.Bits(), tc.spec.Bits)
				}
				sig, err := d.SignRSA(ctx, k, tc.hash, digest, false)
				if err != nil {
					t.Fatalf("SignRSA PKCS1v15: %v", err)
				}
				if err := rsa.VerifyPKCS1v15(pub, tc.hash, digest, sig); err != nil {
					t.Fatalf("PKCS1v15: %v", err)
				}
				sig, err = d.SignRSA(ctx, k, tc.hash, digest, true)
				if err != nil {
					t.Fatalf("SignRSA PSS: %v", err)
				}
				if err := rsa.VerifyPSS(pub, tc.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
					t.Fatalf("PSS: %v", err)
				}
				// swtpm (libtpms) salts with the hash length, what TLS 1.3
				// needs; some chips use the maximum.
				if err := rsa.VerifyPSS(pub, tc.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
					t.Errorf("swtpm's PSS salt is not the hash length: %v", err)
				}
				testDecrypt(t, ctx, d, k, pub)
			}
		})
	}
}

func testDecrypt(t *testing.T, ctx context.Context, d *Device, k *Key, pub *rsa.PublicKey) {
	secret := []byte("a session key, 32 bytes long....")
	c, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.RSADecrypt(ctx, k, c, DecryptScheme{OAEP: true, Hash: crypto.SHA256})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("OAEP: %x, %v", got, err)
	}
	label := []byte("label\x00")
	c, _ = rsa.EncryptOAEP(sha512.New384(), rand.Reader, pub, secret, label)
	got, err = d.RSADecrypt(ctx, k, c, DecryptScheme{OAEP: true, Hash: crypto.SHA384, Label: label})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("OAEP with label: %x, %v", got, err)
	}
	if _, err := d.RSADecrypt(ctx, k, c, DecryptScheme{OAEP: true, Hash: crypto.SHA384, Label: []byte("label")}); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("OAEP label without a terminating zero: %v, want ErrUnsupported", err)
	}
	c, _ = rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
	got, err = d.RSADecrypt(ctx, k, c, DecryptScheme{})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("RSAES: %x, %v", got, err)
	}
	// The raw private-key operation: m^e^d = m.
	m := new(big.Int).SetBytes(secret)
	ce := new(big.Int).Exp(m, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, pub.Size()))
	got, err = d.RSARaw(ctx, k, ce)
	if err != nil || new(big.Int).SetBytes(got).Cmp(m) != 0 {
		t.Fatalf("RSARaw: %x, %v", got, err)
	}
}
