// Package inject adds latency and faults to engine operations, the way
// wolfAsyncCrypt's simulator and Traffic Server's 5-second engine do: to find
// code that only works when the device is fast and never fails.
//
// Options describes what to inject. The software engine takes it in its own
// options and applies it inside the engine (latency holds an in-flight slot,
// as a slow device would); Wrap applies it around any engine.
package inject

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// Options says what to inject. The zero value injects nothing.
type Options struct {
	// Latency is added to every operation.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter).
	Jitter time.Duration
	// NotReady makes every request go back to the end of the engine's queue
	// this many times before it runs, so a caller polling it sees ErrNotReady
	// that many more times (wolfAsyncCrypt's "pending N times"). Engines
	// without a queue of their own ignore it.
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
	// Err is the error the matching request fails with. It is returned
	// wrapped in an *offload.OpError.
	Err error
	// Drop makes the matching request vanish instead: its future resolves
	// only when its context ends or the engine closes, as when a device
	// never answers. Err is ignored.
	Drop bool
}

// Request describes a request to a fault's predicate.
type Request struct {
	Op  offload.Op
	Seq uint64       // 1 for the engine's first request, counting every kind
	Key *offload.Key // nil for hash and random requests
}

// Outcome is what the injector decided for one request.
type Outcome struct {
	Delay time.Duration
	Err   error
	Drop  bool
}

// An Injector applies Options to a stream of requests. It is safe for
// concurrent use.
type Injector struct {
	opts   Options
	seq    atomic.Uint64
	counts []atomic.Uint64 // per fault, matches so far
}

// New returns an injector for o, or nil when o injects nothing; a nil
// *Injector is valid and decides nothing.
func New(o Options) *Injector {
	if o.Latency <= 0 && o.Jitter <= 0 && o.NotReady <= 0 && len(o.Faults) == 0 {
		return nil
	}
	o.Faults = append([]Fault(nil), o.Faults...)
	return &Injector{opts: o, counts: make([]atomic.Uint64, len(o.Faults))}
}

// NotReady returns how many times each request is sent back to the queue.
func (in *Injector) NotReady() int {
	if in == nil {
		return 0
	}
	return in.opts.NotReady
}

// Decide returns the outcome for the next request.
func (in *Injector) Decide(op offload.Op, key *offload.Key) Outcome {
	if in == nil {
		return Outcome{}
	}
	var out Outcome
	out.Delay = in.opts.Latency
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
