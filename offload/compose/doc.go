// Package compose puts two engines behind one: a first engine, usually a
// device (a QuickAssist card, an HSM), and a second one the user supplies,
// usually software. Neither engine knows of the other: the composition is
// this wrapper, and any pair of offload.Engines can be composed.
//
//	dev, _ := qat.Open(ctx, qat.Config{})
//	sw, _ := soft.New(soft.Options{})
//	eng, err := compose.New(dev, sw, compose.Options{Fallback: true})
//	key, err := eng.(offload.Importer).ImportKey(aesKey) // held by both
//
// # Where a request goes
//
// A request goes to the first engine, except:
//
//   - symmetric work smaller than Options.Threshold (2,048 bytes by
//     default): a Cipher request whose Input, or a Hash request whose Data,
//     is shorter goes to the second, so that a 64-byte record never pays a
//     device round trip;
//   - work the first engine cannot do: a request it refuses with
//     offload.ErrUnsupported (which an engine answers before anything
//     reaches its device: an algorithm it does not claim, GCM with more AAD
//     than the device takes, random numbers on a device without a
//     generator) goes to the second;
//   - with Options.Fallback, a request the first engine failed with a device
//     error (offload.ErrUnavailable, offload.ErrBusy: a device resetting or
//     gone, an open circuit, full rings; Options.DeviceError decides) goes
//     to the second once. Without it the failure is the caller's.
//
// A request is only sent where its key is (see Keys): a key held by one
// engine alone sends all its work there, whatever its size, and has no
// fallback. A request whose context has ended is never sent again.
//
// # Never silent
//
// The composed engine's Stats count its requests as the caller sees them,
// and OpStats.Fallbacks counts those that fell back. A caller who wants to
// know where one request went passes a context made by Record: the Route it
// names says which engine served the request and why, and, after a
// fallback, the first engine's error. The two engines' own Stats count
// what each did.
//
// # Keys
//
// A key belongs to one engine, so the composed engine's keys are pairs: a
// handle on the first engine's key and one on the second's, the same key
// material in both. ImportKey imports the key into every engine that takes
// it: an engine that answers offload.ErrUnsupported (a curve or size the
// device lacks) does not hold it and the key is the other's alone; any other
// refusal fails the import. Keys made elsewhere join with Pair, which checks
// that the two halves are one key (equal public keys; for AES, one GCM
// encryption compared). GenerateKey makes a key in the first engine (in the
// second when the first cannot), where it stays: a device's generated
// private key may never leave it, so such a key has no second half, no
// threshold and no fallback. Requests may also carry either engine's own
// keys, which go to that engine.
//
// # Optional interfaces
//
// The composed engine offers offload.Importer and offload.Generator when
// either engine does, and offload.HashSessioner when the first does: hash
// sessions open on the first (on the second, when it is one, for a hash
// the first does not do or, with Fallback, when opening fails with a device
// error). A session's state lives in one engine, so the threshold does not
// apply to sessions and a session that fails midway does not fall back.
package compose
