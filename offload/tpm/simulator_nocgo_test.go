//go:build !cgo

package tpm

import (
	"context"
	"errors"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

func TestSimulatorNeedsCgo(t *testing.T) {
	if _, err := OpenDevice(context.Background(), Config{Simulator: true}); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("Open(Simulator) without cgo = %v, want ErrUnsupported", err)
	}
}
