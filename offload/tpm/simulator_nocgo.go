//go:build !cgo

package tpm

import (
	"fmt"

	"github.com/offcrypt/offcrypt/offload"
)

// openSimulator fails: the in-process simulator is C code and needs cgo.
func openSimulator() (link, error) {
	return nil, fmt.Errorf("tpm: the in-process simulator needs cgo: %w", offload.ErrUnsupported)
}
