// Package optcheck holds the one rule every engine applies to its numeric
// options when it is made (soft.New, pkcs11.Open, qat.Open, inject.Wrap):
// zero means the default, a negative value is refused, and so is a count
// above its bound (MaxCount for what is made up front: in-flight slots,
// workers, sessions), each with an error that wraps offload.ErrInvalid and
// names the option and its value.
package optcheck

import (
	"fmt"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// MaxCount is the largest count option an engine accepts for what it makes
// when it starts (Options.MaxInFlight, Options.Workers, Config.MaxInFlight):
// an engine allocates its queue for every in-flight slot, and starts every
// worker, at once, so a value such as 1<<40 would exhaust memory instead of
// failing.
const MaxCount = 1 << 20

// An Opt is one numeric option and its value. Int, Count and Duration make
// them.
type Opt struct {
	name     string // as the caller writes it: "Options.Workers"
	value    any
	negative bool
	over     int // the bound the value exceeds; 0 when it does not
}

// Int is a numeric option with no upper bound, such as Options.MaxInline.
func Int(name string, v int) Opt { return Opt{name: name, value: v, negative: v < 0} }

// Count is a count of things the engine makes when it starts, such as
// Options.MaxInFlight: at most MaxCount.
func Count(name string, v int) Opt {
	o := Int(name, v)
	if v > MaxCount {
		o.over = MaxCount
	}
	return o
}

// Duration is a time option, such as Options.Latency.
func Duration(name string, d time.Duration) Opt {
	return Opt{name: name, value: d, negative: d < 0}
}

// Check returns an error for the first option of opts out of range,
// prefixed with pkg ("soft: Options.MaxInFlight is -1: ..."), or nil.
func Check(pkg string, opts ...Opt) error {
	for _, o := range opts {
		switch {
		case o.negative:
			return fmt.Errorf("%s: %s is %v: %w: an option may not be negative (zero means the default)", pkg, o.name, o.value, offload.ErrInvalid)
		case o.over > 0:
			return fmt.Errorf("%s: %s is %v: %w: at most %d", pkg, o.name, o.value, offload.ErrInvalid, o.over)
		}
	}
	return nil
}
