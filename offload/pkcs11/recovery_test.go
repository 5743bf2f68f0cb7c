//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

// signOK signs a fresh digest with k and checks the signature.
func signOK(t *testing.T, e *Engine, k *offload.Key, what string) {
	t.Helper()
	if err := signCheck(e, k, what); err != nil {
		t.Fatal(err)
	}
}

// signCheck is signOK for any goroutine.
func signCheck(e *Engine, k *offload.Key, what string) error {
	digest := hashOf(crypto.SHA256, []byte(what))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sig, err := e.Sign(ctx, &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256}).Wait(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
		return fmt.Errorf("%s: bad signature", what)
	}
	return nil
}

func signErr(e *Engine, k *offload.Key) error {
	digest := hashOf(crypto.SHA256, []byte("x"))
	_, err := e.Sign(context.Background(), &offload.SignRequest{Key: k, Digest: digest, Opts: crypto.SHA256}).Wait(context.Background())
	return err
}

func TestRecovery(t *testing.T) {
	for _, tt := range []struct {
		name  string
		under func(t *testing.T, e *Engine) // what happens underneath the engine
		check func(t *testing.T, before, after RecoveryStats)
	}{
		{
			// C_CloseAllSessions from the same process closes the engine's
			// sessions too, and with the last session the login goes.
			name: "sessions-closed",
			under: func(t *testing.T, e *Engine) {
				if err := e.p.CloseAllSessions(e.curSlot()); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, b, a RecoveryStats) {
				if a.Reopened <= b.Reopened || a.Retried <= b.Retried || a.Relogged <= b.Relogged {
					t.Errorf("want a reopen, a relogin and a retry: before %+v after %+v", b, a)
				}
			},
		},
		{
			// C_Logout through another session of the process logs the
			// engine's sessions out: it logs in again, on the same session.
			name:  "logged-out",
			under: logoutUnder,
			check: func(t *testing.T, b, a RecoveryStats) {
				if a.Relogged <= b.Relogged || a.Retried <= b.Retried || a.Reopened != b.Reopened {
					t.Errorf("want a relogin and a retry, no reopen: before %+v after %+v", b, a)
				}
			},
		},
		{
			// C_Finalize underneath: the module must be initialised again,
			// and the key's handle found again.
			name: "module-finalized",
			under: func(t *testing.T, e *Engine) {
				modules.mu.Lock()
				defer modules.mu.Unlock()
				if err := e.p.Finalize(); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, b, a RecoveryStats) {
				if a.Reinitialized != b.Reinitialized+1 || a.Reopened <= b.Reopened || a.Retried <= b.Retried {
					t.Errorf("want one re-initialisation, a reopen and a retry: before %+v after %+v", b, a)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := openEngine(t, 2)
			// Another engine on the same module sees the same loss and must
			// recover from it without re-initialising the module again.
			other := openEngine(t, 1)
			k, err := e.FindKey(context.Background(), "pkcs11:object=ec256")
			if err != nil {
				t.Fatal(err)
			}
			ko, err := other.FindKey(context.Background(), "pkcs11:object=ec256")
			if err != nil {
				t.Fatal(err)
			}
			signOK(t, e, k, "before")
			signOK(t, other, ko, "before, other")
			before, otherBefore := e.Recovery(), other.Recovery()
			tt.under(t, e)
			// Both workers meet the loss at once, and recover one after
			// the other.
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					if err := signCheck(e, k, fmt.Sprint("after ", i)); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			tt.check(t, before, e.Recovery())
			signOK(t, other, ko, "after, other")
			if oa := other.Recovery(); oa.Reinitialized != otherBefore.Reinitialized || oa.Failed != 0 {
				t.Errorf("other engine: before %+v after %+v", otherBefore, oa)
			}
			if a := e.Recovery(); a.Failed != 0 || a.BreakerTrips != 0 {
				t.Errorf("failed recoveries: %+v", a)
			}
		})
	}
}

// TestRecoveryWrongPIN: a PIN the token refuses when recovery logs in again
// is never tried again.
func TestRecoveryWrongPIN(t *testing.T) {
	needHSM(t)
	var calls atomic.Int32
	pin := func(context.Context) ([]byte, error) {
		if calls.Add(1) == 1 {
			return []byte(authPIN), nil
		}
		return []byte("0000"), nil
	}
	e, err := Open(context.Background(), Config{Module: softhsmModule, TokenLabel: authToken, PIN: pin, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	logoutUnder(t, e)
	for i := range 3 {
		_, err := wait(t, e.Random(context.Background(), &offload.RandomRequest{N: 8}))
		// SoftHSM lets a logged-out session draw random bytes: use a
		// private-object operation instead.
		if err == nil {
			_, err = e.GenerateKey(context.Background(), offload.KeyAES, 128)
		}
		if !errors.Is(err, offload.ErrAuth) {
			t.Fatalf("attempt %d: %v, want ErrAuth", i, err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("PIN callback called %d times, want 2 (Open, then one relogin)", n)
	}
}

// TestBreaker: recoveries that keep failing open the breaker, which fails
// requests fast with ErrUnavailable, lets one probe through after the cooldown, and
// closes once a probe recovers.
func TestBreaker(t *testing.T) {
	needHSM(t)
	e, k := openWithKey(t, Config{
		Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 1,
		BreakerThreshold: 2, BreakerCooldown: time.Hour, // ended by the test, never waited for
	}, "pkcs11:object=ec256")
	signOK(t, e, k, "before")
	errDown := errors.New("token down (test)")
	e.rec.failReopen.Store(&errDown)
	if err := e.p.CloseSession(e.sessions[0].sh); err != nil {
		t.Fatal(err)
	}
	// Two failed recoveries: the first after C_SignInit's
	// CKR_SESSION_HANDLE_INVALID, the second before the next request.
	for i := range 2 {
		if err := signErr(e, k); !errors.Is(err, errDown) {
			t.Fatalf("request %d: %v, want the recovery's failure", i, err)
		}
	}
	if r := e.Recovery(); r.BreakerTrips != 1 || r.Failed != 2 {
		t.Fatalf("after two failures: %+v", r)
	}
	// Open: fail fast, before the engine's queue.
	submitted := e.Stats().Op(offload.OpSign).Submitted
	err := signErr(e, k)
	if !errors.Is(err, offload.ErrUnavailable) {
		t.Fatalf("open breaker: %v, want ErrUnavailable", err)
	}
	if got := e.Stats().Op(offload.OpSign).Submitted; got != submitted {
		t.Fatalf("a request reached the engine while the breaker was open")
	}
	cool := func() { e.brk.mu.Lock(); e.brk.until = time.Now().Add(-time.Second); e.brk.mu.Unlock() }
	// Half-open while the token is still down: the probe fails with the
	// recovery's error, and the breaker opens again.
	cool()
	if err := signErr(e, k); !errors.Is(err, errDown) {
		t.Fatalf("probe: %v, want the recovery's failure", err)
	}
	if err := signErr(e, k); !errors.Is(err, offload.ErrUnavailable) {
		t.Fatalf("after a failed probe: %v, want ErrUnavailable", err)
	}
	// The token is back: a probe recovers and the breaker closes.
	e.rec.failReopen.Store(nil)
	cool()
	signOK(t, e, k, "probe")
	for range 3 {
		signOK(t, e, k, "closed again")
	}
	r := e.Recovery()
	if r.BreakerTrips != 1 || r.Failed != 3 || r.Reopened != 1 {
		t.Fatalf("at the end: %+v", r)
	}
}

// TestRecoveryNoRetryForGenerate: a key generation is not repeated after a
// recovery (a second key could be left on the token), but the session is
// restored for the next request.
func TestRecoveryNoRetryForGenerate(t *testing.T) {
	e := openEngine(t, 1)
	if _, err := e.GenerateKey(context.Background(), offload.KeyAES, 128); err != nil {
		t.Fatal(err)
	}
	if err := e.p.CloseSession(e.sessions[0].sh); err != nil {
		t.Fatal(err)
	}
	before := e.Recovery()
	_, err := e.GenerateKey(context.Background(), offload.KeyAES, 128)
	if code, _ := ckCode(err); code != pkcs11.CKR_SESSION_HANDLE_INVALID {
		t.Fatalf("generate on a lost session: %v, want CKR_SESSION_HANDLE_INVALID", err)
	}
	if _, err := e.GenerateKey(context.Background(), offload.KeyAES, 128); err != nil {
		t.Fatalf("generate after recovery: %v", err)
	}
	if a := e.Recovery(); a.Reopened != before.Reopened+1 || a.Retried != before.Retried {
		t.Fatalf("before %+v after %+v", before, a)
	}
}

// TestBreakerStates walks the breaker through closed, open, half-open (a
// failed probe opens it again) and closed. The cooldown is long; the test
// ends it by moving the breaker's deadline, never by waiting.
func TestBreakerStates(t *testing.T) {
	b := &breaker{threshold: 2, cooldown: time.Hour}
	admit := func(wantProbe bool, wantOpen bool) {
		t.Helper()
		probe, err := b.admit()
		if probe != wantProbe || errors.Is(err, offload.ErrUnavailable) != wantOpen {
			t.Fatalf("admit = %v, %v; want probe %v, busy %v", probe, err, wantProbe, wantOpen)
		}
	}
	cooled := func() { b.mu.Lock(); b.until = time.Now().Add(-time.Second); b.mu.Unlock() }
	admit(false, false)
	if b.failure() {
		t.Fatal("tripped after one failure")
	}
	admit(false, false)
	if !b.failure() {
		t.Fatal("not tripped after two failures")
	}
	admit(false, true)
	if b.openErr() == nil {
		t.Fatal("openErr nil while open")
	}
	cooled()
	admit(true, false) // the probe
	admit(false, true) // the others wait for it
	if b.failure() {
		t.Fatal("a failed probe counted as a new trip")
	}
	admit(false, true)
	cooled()
	admit(true, false)
	b.success()
	admit(false, false)
	if b.openErr() != nil {
		t.Fatal("still open after a success")
	}
}

// TestRecoveryFailedRelogin: when the token forgets the login and the PIN
// callback fails once, the request that meets it fails with the callback's
// error, and the next ones sign, whichever worker takes them: none says the
// key is gone (the token hides its private objects from a session that is
// not logged in, which says nothing about the key).
func TestRecoveryFailedRelogin(t *testing.T) {
	needHSM(t)
	errPIN := errors.New("PIN prompt dismissed (test)")
	var failNext atomic.Bool
	pin := func(context.Context) ([]byte, error) {
		if failNext.CompareAndSwap(true, false) {
			return nil, errPIN
		}
		return []byte(mainPIN), nil
	}
	e, k := openWithKey(t, Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pin, MaxInFlight: 2},
		"pkcs11:object=ec256;type=private")
	// Rounds, so that the request after the failed one meets the worker
	// that failed in some and the other worker (whose session is not
	// logged in, and whose cached handle is void) in others.
	for round := range 10 {
		signOK(t, e, k, fmt.Sprint("before, round ", round))
		failNext.Store(true)
		logoutUnder(t, e)
		err := signCheck(e, k, fmt.Sprint("logged out, round ", round))
		if !errors.Is(err, errPIN) || errors.Is(err, offload.ErrNotFound) {
			t.Fatalf("round %d, the request that met the logout: %v; want the PIN callback's error, not ErrNotFound", round, err)
		}
		for i := range 3 {
			if err := signCheck(e, k, fmt.Sprint("round ", round, " after ", i)); err != nil {
				t.Fatalf("round %d, request %d after the failed relogin: %v", round, i, err)
			}
		}
	}
	if r := e.Recovery(); r.Failed != 10 || r.Relogged < 10 {
		t.Errorf("want 10 failed recoveries and a relogin after each: %+v", r)
	}
}

// openWithKey opens an engine with c, closed when the test ends, and finds
// the key at uri.
func openWithKey(t *testing.T, c Config, uri string) (*Engine, *offload.Key) {
	t.Helper()
	e, err := Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	k, err := e.FindKey(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	return e, k
}

// logoutUnder logs the process out of e's token underneath e, through a
// session of its own: e's sessions are left open but not logged in.
func logoutUnder(t *testing.T, e *Engine) {
	t.Helper()
	sh, err := e.p.OpenSession(e.curSlot(), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer e.p.CloseSession(sh)
	if err := e.p.Logout(sh); err != nil {
		t.Fatal(err)
	}
}
