//go:build cgo

package tpm

import (
	"fmt"

	"github.com/google/go-tpm-tools/simulator"
)

// openSimulator starts go-tpm's in-process TPM simulator (the reference
// implementation compiled in with cgo). The simulator is one per process:
// a second Open waits until the first Device closes. Each Open manufactures
// a fresh TPM, so nothing made on an earlier one can be loaded.
func openSimulator() (link, error) {
	sim, err := simulator.Get()
	if err != nil {
		return nil, fmt.Errorf("tpm: simulator: %w: %w", ErrTransport, err)
	}
	return newConn(sim), nil
}
