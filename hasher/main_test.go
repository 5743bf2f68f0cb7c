package hasher_test

import (
	"os"
	"testing"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/softhsm"
)

// hsm is the test binary's SoftHSM2, set up by the first test that needs
// it.
var hsm = softhsm.New(softhsm.Token{Label: "hasher", PIN: "1234"})

// TestMain fails the run if the tests leave a goroutine running, and
// removes SoftHSM2's directory.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m, hsm.Remove)) }
