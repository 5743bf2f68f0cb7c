package experiment

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// TestRun checks what the experiment must show without timing anything:
// every handshake succeeds, each made one signature in the engine, and the
// engine had all of them in flight at once when it allowed that, one at a
// time when it did not. The async delay is long enough that every client
// reaches the signature before the first one finishes, even under the race
// detector on two shared cores.
func TestRun(t *testing.T) {
	tests := []struct {
		c    Config
		peak int64
	}{
		{Config{Mode: "async", Alg: "ecdsa", Delay: time.Second, N: 20, MaxInFlight: 20}, 20},
		{Config{Mode: "stacked", Alg: "ecdsa", Delay: 200 * time.Millisecond, N: 4, MaxInFlight: 1}, 1},
		{Config{Mode: "async", Alg: "rsa", Delay: time.Second, N: 8, MaxInFlight: 8}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.c.Mode+"/"+tt.c.Alg, func(t *testing.T) {
			priv, err := Key(tt.c.Alg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(context.Background(), tt.c, priv)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Check(); err != nil {
				t.Fatal(err)
			}
			if r.Signed != uint64(tt.c.N) {
				t.Errorf("engine signed %d times, want %d", r.Signed, tt.c.N)
			}
			if r.PeakFlight != tt.peak {
				t.Errorf("engine peak in flight %d, want %d", r.PeakFlight, tt.peak)
			}
			t.Logf("%s %s: n=%d limit=%d wall=%v peak=%d", r.Mode, r.Alg, r.N, r.MaxInFlight, r.Wall, r.PeakFlight)
		})
	}
}

func TestBadConfig(t *testing.T) {
	priv, err := Key("ecdsa")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{{N: 0, MaxInFlight: 1}, {N: 1, MaxInFlight: 0}, {N: 1, MaxInFlight: 1, Delay: -1}} {
		if _, err := Run(context.Background(), c, priv); !errors.Is(err, offload.ErrInvalid) {
			t.Errorf("%+v: err = %v", c, err)
		}
	}
	if _, err := Key("dsa"); !errors.Is(err, offload.ErrInvalid) {
		t.Errorf("Key(dsa): %v", err)
	}
	if err := (Result{Config: Config{N: 2}, OK: 1}).Check(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Check: %v", err)
	}
}
