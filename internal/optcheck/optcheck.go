// Package optcheck holds the one rule every engine applies to its numeric
// options when it is made (soft.New, pkcs11.Open, inject.Wrap): zero means
// the default, and a negative value is refused with an error that wraps
// offload.ErrInvalid and names the option and its value.
package optcheck

import (
	"fmt"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// An Opt is one numeric option and its value. Int and Duration make them.
type Opt struct {
	name     string // as the caller writes it: "Options.Workers"
	value    any
	negative bool
}

// Int is a count option, such as Options.Workers.
func Int(name string, v int) Opt { return Opt{name: name, value: v, negative: v < 0} }

// Duration is a time option, such as Options.Latency.
func Duration(name string, d time.Duration) Opt {
	return Opt{name: name, value: d, negative: d < 0}
}

// NonNegative returns an error for the first negative option of opts,
// prefixed with pkg ("soft: Options.MaxInFlight is -1: ..."), or nil.
func NonNegative(pkg string, opts ...Opt) error {
	for _, o := range opts {
		if o.negative {
			return fmt.Errorf("%s: %s is %v: %w: an option may not be negative (zero means the default)", pkg, o.name, o.value, offload.ErrInvalid)
		}
	}
	return nil
}
