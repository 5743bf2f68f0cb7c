//go:build cgo

package tpm

import (
	"crypto/sha256"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

func TestSimulator(t *testing.T) {
	ctx := testCtx(t)
	d, err := OpenDevice(ctx, Config{Simulator: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("simulator"))
	if err := signAndVerify(ctx, d, k, digest[:]); err != nil {
		t.Fatal(err)
	}
}
