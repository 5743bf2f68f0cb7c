// Package fault is the model of injected latency and faults: what to inject
// (Options) and, per request, what happens to it (an exec.Outcome). The
// executor under every engine applies the outcome; the software engine takes
// Options in its own options, and offload/inject applies them around any
// engine, both through this one model.
package fault

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/optcheck"
	"github.com/offcrypt/offcrypt/offload"
)

// Options says what to inject. The zero value injects nothing.
type Options struct {
	// Latency is added to every operation. The operation holds its
	// in-flight slot meanwhile, as on a slow device: the work is done and
	// its result delivered after the delay.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter).
	Jitter time.Duration
	// NotReady makes every request go back to the end of the engine's queue
	// this many times before it runs, so a caller polling it sees
	// offload.ErrNotReady that many more times (a device that answers
	// "pending" N times). Requests that set offload.Call.Inline are queued
	// too while NotReady is set.
	NotReady int
	// Faults are checked in order for every request; the first that matches
	// decides its fate.
	Faults []Fault
}

// A Fault fails or drops the requests it matches.
type Fault struct {
	// Every makes the fault match every Nth request that passes If (1 is
	// every one, 3 is the third, sixth, ...). Zero is taken as 1.
	Every uint64
	// If restricts the fault to requests it returns true for; nil matches all.
	If func(Request) bool
	// Err is the error the matching request fails with, without being
	// done. It is returned wrapped in an *offload.OpError.
	Err error
	// Drop makes the matching request vanish instead: its future resolves
	// only when its context ends or the engine closes, as when a device
	// never answers, and it holds its in-flight slot until then. Err is
	// ignored.
	Drop bool
}

// Request describes a request to a fault's predicate.
type Request struct {
	Op  offload.Op
	Seq uint64       // 1 for the engine's first request, counting every kind
	Key *offload.Key // nil for hash and random requests
}

// Check refuses options that make no sense, with an error prefixed with pkg
// that wraps offload.ErrInvalid: a negative Latency, Jitter or NotReady
// (zero means none), and a fault with neither Err nor Drop.
func (o Options) Check(pkg string) error {
	if err := optcheck.Check(pkg,
		optcheck.Duration("Options.Latency", o.Latency),
		optcheck.Duration("Options.Jitter", o.Jitter),
		optcheck.Int("Options.NotReady", o.NotReady)); err != nil {
		return err
	}
	for i, f := range o.Faults {
		if f.Err == nil && !f.Drop {
			return fmt.Errorf("%s: Options.Faults[%d] has neither Err nor Drop: %w", pkg, i, offload.ErrInvalid)
		}
	}
	return nil
}

// injector applies Options to a stream of requests. It is safe for
// concurrent use.
type injector struct {
	opts   Options
	seq    atomic.Uint64
	counts []atomic.Uint64 // per fault, matches so far
}

// New returns the injector for o, or nil when o injects nothing.
func New(o Options) exec.Injector {
	if o.Latency <= 0 && o.Jitter <= 0 && o.NotReady <= 0 && len(o.Faults) == 0 {
		return nil
	}
	o.Faults = append([]Fault(nil), o.Faults...)
	return &injector{opts: o, counts: make([]atomic.Uint64, len(o.Faults))}
}

// Decide returns the outcome for the next request.
func (in *injector) Decide(op offload.Op, key *offload.Key) exec.Outcome {
	out := exec.Outcome{Delay: in.opts.Latency, Spins: max(in.opts.NotReady, 0)}
	if in.opts.Jitter > 0 {
		out.Delay += rand.N(in.opts.Jitter)
	}
	if len(in.opts.Faults) == 0 {
		return out
	}
	req := Request{Op: op, Seq: in.seq.Add(1), Key: key}
	for i := range in.opts.Faults {
		f := &in.opts.Faults[i]
		if f.If != nil && !f.If(req) {
			continue
		}
		every := max(f.Every, 1)
		if in.counts[i].Add(1)%every != 0 {
			continue
		}
		if f.Drop {
			out.Drop = true
		} else {
			out.Err = f.Err
		}
		return out
	}
	return out
}
