package tpm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
)

// BenchmarkSign signs on swtpm through the Device, with the salted session
// and without, next to a raw go-tpm TPM2_Sign loop (password auth, no
// session) on the same connection kind: the device's ceiling.
func BenchmarkSign(b *testing.B) {
	digest := sha256.Sum256([]byte("bench"))
	for _, spec := range []KeySpec{{Type: offload.KeyECDSAP256}, {Type: offload.KeyRSA, Bits: 2048}} {
		for _, mode := range []string{"raw-go-tpm", "session", "no-session"} {
			b.Run(spec.Type.String()+"/"+mode, func(b *testing.B) {
				s := swtpm.Start(b)
				ctx := b.Context()
				d, err := OpenDevice(ctx, Config{Address: s.Addr, NoParameterEncryption: mode != "session"})
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				k, err := d.CreateKey(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				sign := func() error { return signOnce(ctx, d, k, digest[:]) }
				if mode == "raw-go-tpm" {
					h, _, err := d.use(ctx, k)
					if err != nil {
						b.Fatal(err)
					}
					scheme := tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})}
					if spec.Type == offload.KeyRSA {
						scheme = tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgRSASSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})}
					}
					h.Auth = tpm2.PasswordAuth(nil)
					tpm := d.tpm
					sign = func() error {
						_, err := tpm2.Sign{KeyHandle: h, Digest: tpm2.TPM2BDigest{Buffer: digest[:]}, InScheme: scheme,
							Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull}}.Execute(tpm)
						return err
					}
				}
				if err := sign(); err != nil { // the first ECDSA sign answers RETRY
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					if err := sign(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// signOnce signs digest with k without checking the signature.
func signOnce(ctx context.Context, d *Device, k *Key, digest []byte) error {
	if k.Type() == offload.KeyRSA {
		_, err := d.SignRSA(ctx, k, crypto.SHA256, digest, false)
		return err
	}
	_, _, err := d.SignECDSA(ctx, k, crypto.SHA256, digest)
	return err
}

// BenchmarkEngineSign signs on swtpm through the Engine at 1 and 16
// callers, with the salted session and without: set it against
// BenchmarkSign's raw go-tpm loop. RSA goes through the raw private-key
// operation (PKCS #1 v1.5 encoded here, TPM2_RSA_Decrypt), the raw loop
// through TPM2_Sign RSASSA.
func BenchmarkEngineSign(b *testing.B) {
	digest := sha256.Sum256([]byte("bench"))
	for _, kt := range []offload.KeyType{offload.KeyECDSAP256, offload.KeyRSA} {
		for _, mode := range []string{"session", "no-session"} {
			for _, callers := range []int{1, 16} {
				b.Run(fmt.Sprintf("%v/%s/callers=%d", kt, mode, callers), func(b *testing.B) {
					s := swtpm.Start(b)
					ctx := b.Context()
					e, err := Open(ctx, Config{Address: s.Addr, NoParameterEncryption: mode != "session"})
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					k, err := e.GenerateKey(ctx, kt, 2048)
					if err != nil {
						b.Fatal(err)
					}
					req := &offload.SignRequest{Key: k, Digest: digest[:], Opts: crypto.SHA256}
					if _, err := e.Sign(ctx, req).Wait(ctx); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := e.Sign(ctx, req).Wait(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}
