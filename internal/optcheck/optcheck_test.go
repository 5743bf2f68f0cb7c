package optcheck

import (
	"errors"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

func TestCheck(t *testing.T) {
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
		{"count-at-bound", []Opt{Count("Options.MaxInFlight", MaxCount)}, ""},
		{"count-over", []Opt{Count("Options.MaxInFlight", 1<<40)},
			"soft: Options.MaxInFlight is 1099511627776: offload: invalid input: at most 1048576"},
		{"count-negative", []Opt{Count("Options.Workers", -1)},
			"soft: Options.Workers is -1: offload: invalid input: an option may not be negative (zero means the default)"},
		{"int-unbounded", []Opt{Int("Options.MaxInline", 1<<40)}, ""},
		{"first-wins", []Opt{Int("Options.Workers", -2), Int("Options.MaxInline", -3)},
			"soft: Options.Workers is -2: offload: invalid input: an option may not be negative (zero means the default)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check("soft", tc.opts...)
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
