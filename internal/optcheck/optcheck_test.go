package optcheck

import (
	"errors"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

func TestNonNegative(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Opt
		want string // "" for no error
	}{
		{"none", nil, ""},
		{"zeros", []Opt{Int("Options.Workers", 0), Duration("Options.Latency", 0)}, ""},
		{"positive", []Opt{Int("Options.Workers", 3), Duration("Options.Latency", time.Second)}, ""},
		{"int", []Opt{Int("Options.Workers", 2), Int("Options.MaxInFlight", -1)},
			"soft: Options.MaxInFlight is -1: offload: invalid input: an option may not be negative (zero means the default)"},
		{"duration", []Opt{Duration("Options.Latency", -time.Millisecond)},
			"soft: Options.Latency is -1ms: offload: invalid input: an option may not be negative (zero means the default)"},
		{"first-wins", []Opt{Int("Options.Workers", -2), Int("Options.MaxInline", -3)},
			"soft: Options.Workers is -2: offload: invalid input: an option may not be negative (zero means the default)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NonNegative("soft", tc.opts...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, offload.ErrInvalid) || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q wrapping offload.ErrInvalid", err, tc.want)
			}
		})
	}
}
