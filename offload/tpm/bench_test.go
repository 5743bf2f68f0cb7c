package tpm

import (
	"context"
	"crypto"
	"crypto/sha256"
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
