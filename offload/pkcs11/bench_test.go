//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

// BenchmarkSignECDSAP256 signs with a P-256 key on SoftHSM2 through an
// engine with two sessions, from 1 and from 8 concurrent callers.
func BenchmarkSignECDSAP256(b *testing.B) {
	e := openEngine(b, 2)
	ctx := context.Background()
	k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		b.Fatal(err)
	}
	digest := hashOf(crypto.SHA256, []byte("bench"))
	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.ResetTimer()
			for range callers {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						req := &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256}
						if _, err := e.Sign(ctx, req).Wait(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}

// BenchmarkRawSignECDSAP256 is the ceiling: miekg/pkcs11 C_SignInit+C_Sign
// in a loop on one session per caller (1 and 2 callers), no engine between.
func BenchmarkRawSignECDSAP256(b *testing.B) {
	e := openEngine(b, 2)
	ctx := context.Background()
	k, err := e.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		b.Fatal(err)
	}
	obj := k.Handle().(*keyHandle).obj
	digest := hashOf(crypto.SHA256, []byte("bench"))
	for _, callers := range []int{1, 2} {
		b.Run(fmt.Sprintf("sessions=%d", callers), func(b *testing.B) {
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.ResetTimer()
			for i := range callers {
				sh := e.sessions[i].sh // idle: nothing is submitted to e meanwhile
				wg.Go(func() {
					m := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
					for left.Add(-1) >= 0 {
						if err := e.p.SignInit(sh, m, obj); err != nil {
							b.Error(err)
							return
						}
						if _, err := e.p.Sign(sh, digest); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}
