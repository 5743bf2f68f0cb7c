// Package inject adds latency and faults to any engine's operations, to find
// code that only works when the device is fast and never fails.
//
// Options describes what to inject; Wrap applies it around any engine. The
// software engine takes the same Faults in its own options. Both go through
// one model and one mechanism, the executor every engine runs on: a delay
// holds an in-flight slot after the work is done, as a slow device would; a
// fault fails the request without doing it; a drop keeps it until its
// context ends or the engine closes; NotReady sends it round a queue.
package inject

import "github.com/offcrypt/offcrypt/internal/fault"

// Options says what to inject. The zero value injects nothing.
type Options = fault.Options

// A Fault fails or drops the requests it matches.
type Fault = fault.Fault

// Request describes a request to a fault's predicate.
type Request = fault.Request
