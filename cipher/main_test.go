package cipher_test

import (
	"os"
	"testing"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
	"github.com/offcrypt/offcrypt/internal/softhsm"
)

// hsm is the test binary's SoftHSM2, for the engines table.
var hsm *softhsm.HSM

const (
	hsmToken = "cipher"
	hsmPIN   = "1234"
)

// TestMain sets SoftHSM2 up for the process and fails the run if the tests
// leave a goroutine running.
func TestMain(m *testing.M) {
	hsm = softhsm.Setup(softhsm.Token{Label: hsmToken, PIN: hsmPIN})
	code := leakcheck.Run(m)
	hsm.Remove()
	os.Exit(code)
}
