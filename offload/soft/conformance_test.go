package soft_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/offcrypt/offcrypt/internal/fault"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/conformance"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// TestConformance runs the suite every engine passes.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Setup {
		// Random requests are dropped while hold is set: each then keeps its
		// in-flight slot until its context ends, which is how Saturate fills
		// the engine.
		var hold atomic.Bool
		const maxInFlight = 32
		eng, err := soft.New(soft.Options{
			Workers:     2,
			MaxInFlight: maxInFlight,
			Faults: []fault.Fault{{
				If:   func(r fault.Request) bool { return r.Op == offload.OpRandom && hold.Load() },
				Drop: true,
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return conformance.Setup{
			Engine:   eng,
			Import:   eng.ImportKey,
			Generate: eng.GenerateKey,
			Refuse:   refuse,
			Saturate: func(t *testing.T) func() {
				ctx, cancel := context.WithCancel(context.Background())
				hold.Store(true)
				held := make([]*offload.Future[[]byte], maxInFlight)
				for i := range held {
					held[i] = eng.Random(ctx, &offload.RandomRequest{N: 1})
				}
				hold.Store(false)
				return func() {
					cancel()
					for _, f := range held {
						<-f.Done()
					}
				}
			},
		}
	})
}

// refuse makes engines with each numeric option at -1.
func refuse(t *testing.T) map[string]error {
	errs := make(map[string]error)
	for name, o := range map[string]soft.Options{
		"Options.Workers":     {Workers: -1},
		"Options.MaxInFlight": {MaxInFlight: -1},
		"Options.MaxInline":   {MaxInline: -1},
		"Options.Latency":     {Latency: -1},
		"Options.Jitter":      {Jitter: -1},
		"Options.NotReady":    {NotReady: -1},
	} {
		eng, err := soft.New(o)
		if err == nil {
			eng.Close()
		}
		errs[name] = err
	}
	return errs
}
