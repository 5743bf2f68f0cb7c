package compose_test

import (
	"os"
	"testing"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
)

// TestMain fails the run if the tests leave a goroutine running.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
