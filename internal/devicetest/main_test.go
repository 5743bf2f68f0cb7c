package devicetest

import (
	"os"
	"testing"

	"github.com/offcrypt/offcrypt/internal/leakcheck"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
