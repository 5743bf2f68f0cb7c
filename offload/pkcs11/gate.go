package pkcs11

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// A gate keeps the calls into a module apart from its re-initialisation.
// PKCS #11 leaves C_Finalize undefined while other threads are inside the
// module, and real modules abort the process or crash when it happens: so
// every call, or sequence of calls that shares handles, is made between
// enter and leave, and C_Finalize and C_Initialize run between shut and
// open, when no call is inside and none can enter.
//
// It is a readers-writer lock with two differences that recovery needs.
// shut gives up after a bound (and when its context ends) instead of
// waiting forever for a call that a hung device never returns: a module is
// never finalised under a running call, and a recovery that cannot quiesce
// the module fails instead. And holders of the shared side never wait for
// one another, only for a shut, so a goroutine that finds the module lost
// while inside must leave before it may shut.
type gate struct {
	mu      sync.Mutex
	calls   int           // goroutines between enter and leave
	shutC   chan struct{} // while a shut waits or holds: closed by open
	drained chan struct{} // while a shut waits for calls: closed when none is left
}

// enter waits while the gate is shut (or a shut waits for it), and enters.
func (g *gate) enter() {
	g.mu.Lock()
	for g.shutC != nil {
		c := g.shutC
		g.mu.Unlock()
		<-c
		g.mu.Lock()
	}
	g.calls++
	g.mu.Unlock()
}

// leave ends what enter began.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls--
	if g.calls < 0 {
		panic("pkcs11: gate left more often than entered")
	}
	if g.calls == 0 && g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
}

// shut stops new entries and waits until no call is inside, for at most
// bound, and returns nil with the gate shut, to be opened with open. When
// calls are still inside after bound, or ctx ends first, it opens the gate
// again and returns an error (wrapping offload.ErrUnavailable, or ctx's).
// The caller must not be inside the gate.
func (g *gate) shut(ctx context.Context, bound time.Duration) error {
	g.mu.Lock()
	for g.shutC != nil { // one shut at a time
		c := g.shutC
		g.mu.Unlock()
		select {
		case <-c:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		g.mu.Lock()
	}
	g.shutC = make(chan struct{})
	if g.calls == 0 {
		g.mu.Unlock()
		return nil
	}
	drained := make(chan struct{})
	g.drained = drained
	g.mu.Unlock()

	t := time.NewTimer(bound)
	defer t.Stop()
	var err error
	select {
	case <-drained:
		return nil
	case <-t.C:
		err = fmt.Errorf("pkcs11: module calls still running after %v: not re-initialising the module under them: %w",
			bound, offload.ErrUnavailable)
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls == 0 { // drained meanwhile: the gate is shut after all
		return nil
	}
	g.drained = nil
	close(g.shutC)
	g.shutC = nil
	return err
}

// open ends what a successful shut began.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.shutC)
	g.shutC = nil
}
