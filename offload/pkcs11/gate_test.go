package pkcs11

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// bound is how long a gate test waits for something that must happen; it
// is never reached when the gate works.
const bound = 10 * time.Second

// TestGateShutWaitsForCalls: shut waits for the calls inside, keeps new
// ones out until open, and lets them in after.
func TestGateShutWaitsForCalls(t *testing.T) {
	var g gate
	g.enter()
	shut := make(chan error, 1)
	go func() { shut <- g.shut(context.Background(), bound) }()
	// A call that comes while shut waits must wait too. It has seen the
	// shut pending before the first call leaves, so it cannot have missed
	// it, whenever it gets to enter.
	entered := make(chan struct{})
	coming := make(chan struct{})
	go func() {
		waitShutPending(t, &g)
		close(coming)
		g.enter()
		close(entered)
	}()
	select {
	case <-coming:
	case <-time.After(bound):
		t.Fatal("the second call never saw the shut pending")
	}
	select {
	case err := <-shut:
		t.Fatalf("shut returned %v with a call inside", err)
	case <-entered:
		t.Fatal("a call entered while shut waited")
	default:
	}
	g.leave()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("shut: %v", err)
		}
	case <-time.After(bound):
		t.Fatal("shut did not return once the call left")
	}
	select {
	case <-entered:
		t.Fatal("a call entered while the gate was shut")
	default:
	}
	g.open()
	select {
	case <-entered:
	case <-time.After(bound):
		t.Fatal("the waiting call did not enter after open")
	}
	g.leave()
}

// TestGateShutGivesUp: a call that never leaves makes shut fail with
// ErrUnavailable after its bound, or with the context's error, and leaves
// the gate open: new calls enter, and a later shut succeeds.
func TestGateShutGivesUp(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ctx   func() context.Context
		bound time.Duration
		want  error
	}{
		{"bound", context.Background, time.Millisecond, offload.ErrUnavailable},
		{"context", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, bound, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var g gate
			g.enter() // never leaves until the end
			if err := g.shut(tt.ctx(), tt.bound); !errors.Is(err, tt.want) {
				t.Fatalf("shut = %v, want %v", err, tt.want)
			}
			entered := make(chan struct{})
			go func() { g.enter(); close(entered) }()
			select {
			case <-entered:
			case <-time.After(bound):
				t.Fatal("calls cannot enter after a failed shut")
			}
			g.leave()
			g.leave()
			if err := g.shut(context.Background(), bound); err != nil {
				t.Fatalf("shut after the calls left: %v", err)
			}
			g.open()
		})
	}
}

// TestGateOneShutAtATime: a second shut waits for the first one's open.
func TestGateOneShutAtATime(t *testing.T) {
	var g gate
	if err := g.shut(context.Background(), bound); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- g.shut(context.Background(), bound) }()
	select {
	case err := <-second:
		t.Fatalf("a second shut returned %v while the first held the gate", err)
	case <-time.After(10 * time.Millisecond): // a chance to run, not a timing assertion
	}
	g.open()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(bound):
		t.Fatal("the second shut did not get the gate")
	}
	g.open()
}

// waitShutPending waits until a shut has closed the gate to new calls.
func waitShutPending(t *testing.T, g *gate) {
	deadline := time.Now().Add(bound)
	for {
		g.mu.Lock()
		pending := g.shutC != nil
		g.mu.Unlock()
		if pending {
			return
		}
		if time.Now().After(deadline) {
			t.Error("no shut pending")
			return
		}
		time.Sleep(time.Millisecond)
	}
}
