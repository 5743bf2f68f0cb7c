//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

// recovery is an engine's state for recovering from sessions, logins and
// module lives lost underneath it.
type recovery struct {
	mu      sync.Mutex // serialises recoveries of the engine's workers
	slot    atomic.Uint64
	modGen  uint64          // the module life the engine last saw; guarded by mu
	authErr error           // a refused PIN: never tried again; guarded by mu
	ctx     context.Context // ends at Close: bounds a PIN callback recovery waits on
	cancel  context.CancelFunc
	keyGen  atomic.Uint64 // bumped when cached object handles become void

	reopened, relogged, reinitialized, failed, trips atomic.Uint64

	// failReopen, when set (tests only), makes every recovery fail with
	// its error before it touches the module.
	failReopen atomic.Pointer[error]
}

// curSlot returns the token's slot (it may change when recovery has to
// find the token again after the module was re-initialised).
func (e *Engine) curSlot() uint { return uint(e.rec.slot.Load()) }

// Recovery returns the engine's recovery counters. When an operation fails
// because the token lost the worker's session (CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED), forgot the login (CKR_USER_NOT_LOGGED_IN), or the
// module lost the token or itself (CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, CKR_CRYPTOKI_NOT_INITIALIZED), the worker reopens
// its session (Reopened), logs in again with Config.PIN if the token reports
// the session logged out (Relogged), and when the module itself is lost, or
// no session can be opened any more, finalises and initialises the module
// again (Reinitialized) — once for all the engines in the process that share
// the module; the others then only reopen their sessions. Cached key handles
// are found again by class, CKA_ID and CKA_LABEL. The operation is then
// retried once (Retried): signing, decrypting, random bytes, digests,
// ciphers and key lookups are safe to repeat; a key generation is not, and
// a login the token refused is never tried again. Failed counts failed
// recoveries; after Config.BreakerThreshold of them in a row the breaker
// opens (BreakerTrips) and requests fail at once with an error wrapping
// offload.ErrUnavailable until Config.BreakerCooldown has passed and a probe
// succeeds.
//
// Re-initialising the module first quiesces it: every call any engine in
// the process makes into the module runs inside the module's gate, and the
// re-initialisation shuts it, so C_Finalize never runs while another call is
// inside the module (modules abort or crash when it does), and no call
// enters before C_Initialize has returned. When calls are still inside after
// 10 s (a hung device), the recovery fails instead. Recoveries that fail
// because the module, the token or a server in front of it cannot be
// reached, and requests the open breaker refuses, fail with errors wrapping
// offload.ErrUnavailable, never offload.ErrNotFound: the keys may well be
// there.
func (e *Engine) Recovery() RecoveryStats {
	r := &e.rec
	return RecoveryStats{
		Reopened:      r.reopened.Load(),
		Relogged:      r.relogged.Load(),
		Reinitialized: r.reinitialized.Load(),
		Retried:       e.x.Retried(),
		Failed:        r.failed.Load(),
		BreakerTrips:  r.trips.Load(),
	}
}

// gone reports whether code says a session, login, token or module was lost
// underneath the engine: the codes recovery acts on.
func gone(code pkcs11.Error) bool {
	switch code {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_DEVICE_ERROR:
		return true
	}
	return false
}

// moduleLost reports whether code says the module must be initialised
// again before any session can be had.
func moduleLost(code pkcs11.Error) bool {
	switch code {
	case pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_DEVICE_REMOVED:
		return true
	}
	return false
}

// staleHandle reports whether code says a cached object handle is void.
func staleHandle(code pkcs11.Error) bool {
	return code == pkcs11.CKR_KEY_HANDLE_INVALID || code == pkcs11.CKR_OBJECT_HANDLE_INVALID
}

// recoveryError is an operation's failure after which recovery failed too.
// It matches what the recovery's failure matches, which says what state the
// token is in now (unreachable, a login refused), and not what the
// operation's code alone would suggest: a key handle voided by a lost login
// says nothing about whether the key is still on the token. The operation's
// own CKR code stays reachable with errors.As.
type recoveryError struct {
	err  error // the operation's failure
	rerr error // the recovery's
}

func (e *recoveryError) Error() string { return e.err.Error() + "; recovery failed: " + e.rerr.Error() }

// Unwrap returns the recovery's failure.
func (e *recoveryError) Unwrap() error { return e.rerr }

// As finds target in the operation's failure (its CKR code), before
// errors.As looks through Unwrap.
func (e *recoveryError) As(target any) bool { return errors.As(e.err, target) }

// errLoggedOut reports an object search that found nothing on a session
// that is not logged in although the engine logs in: the token hides its
// private objects from such a session, so the search says nothing about the
// key. device.Recover treats it as CKR_USER_NOT_LOGGED_IN: it logs in again
// and the operation is retried.
var errLoggedOut = fmt.Errorf("pkcs11: the session is not logged in, so the token hides its private objects: %w", offload.ErrAuth)

// recoverWorker restores w's session after code (0: the session is known
// to be lost or must be replaced, or the module re-initialised since it was
// opened), under the circuit breaker: while the breaker is open only a probe
// may try. It runs on w's worker, outside the module's gate.
func (e *Engine) recoverWorker(w *worker, probe bool, code pkcs11.Error) error {
	if !probe {
		if err := e.brk.openErr(); err != nil {
			w.broken = true
			return err
		}
	}
	err := e.recoverSession(w, code)
	// Whatever was lost, cached object handles may have gone with it (a
	// token voids private objects' handles when the login goes, which the
	// loss of the last session of the process does): find keys again.
	e.rec.keyGen.Add(1)
	if err != nil {
		w.broken = true
		e.rec.failed.Add(1)
		if e.brk.failure() {
			e.rec.trips.Add(1)
		}
		return err
	}
	w.broken = false
	e.brk.success()
	return nil
}

// recoverSession does the work of recoverWorker. It runs inside the
// module's gate, except while it re-initialises the module.
func (e *Engine) recoverSession(w *worker, code pkcs11.Error) error {
	r := &e.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.failReopen.Load(); p != nil {
		return *p
	}
	if r.authErr != nil {
		return r.authErr
	}
	gen := e.mod.enter()
	inside := true
	defer func() {
		if inside {
			e.mod.leave()
		}
	}()
	if !w.broken && !w.reset && w.gen == gen {
		switch {
		case code == pkcs11.CKR_USER_NOT_LOGGED_IN:
			// The session is fine; only the login is gone.
			return e.relogin(w, true)
		case staleHandle(code):
			return e.relogin(w, false)
		}
	}
	reinit := moduleLost(code)
	seen := w.gen // the module life in which the loss was seen
	for try := 0; ; try++ {
		if reinit {
			e.mod.leave() // reinit shuts the gate: be out of it
			inside = false
			did, err := e.mod.reinit(r.ctx, seen)
			e.mod.enter()
			inside = true
			if err != nil {
				return err
			}
			if did {
				r.reinitialized.Add(1)
			}
		}
		seen = e.mod.generation()
		err := e.reopen(w, w.reset || code == pkcs11.CKR_DEVICE_ERROR && try == 0)
		if err == nil {
			break
		}
		c, _ := ckCode(err)
		if reinit || try > 0 || !(gone(c) || c == pkcs11.CKR_SLOT_ID_INVALID || errors.Is(err, errNoToken)) {
			return err
		}
		reinit = true // no session to be had: the module itself is lost
	}
	return e.relogin(w, false)
}

// reopen opens a new session for w, finding the token's slot again when the
// module was re-initialised since the engine last looked. With closeOld it
// first closes w's old session, which the failure may have left open; it
// never does when the old handle is void, since the module may have given
// the same number to another session since. A token that cannot be found
// any more is unreachable (offload.ErrUnavailable), not missing: it was
// there at Open. r.mu is held and the caller is inside the gate.
func (e *Engine) reopen(w *worker, closeOld bool) error {
	r := &e.rec
	gen := e.mod.generation()
	if gen != w.gen {
		w.broken = true // its session died with the module's last life
	}
	if gen != r.modGen {
		slot, err := e.findToken()
		if errors.Is(err, errNoToken) {
			err = fmt.Errorf("%w: %w", err, offload.ErrUnavailable)
		}
		if err != nil {
			return err
		}
		r.slot.Store(uint64(slot))
		r.modGen = gen
		r.keyGen.Add(1)
	}
	if closeOld && !w.broken {
		e.p.CloseSession(w.sh) // the answer does not matter
	}
	w.broken, w.reset = true, false
	e.sessions[w.i] = session{} // not closed again at Close: the number may be another session's by now
	sh, err := e.p.OpenSession(e.curSlot(), e.flags)
	if err != nil {
		return ckErr("C_OpenSession", err)
	}
	w.sh, w.gen, w.broken = sh, gen, false
	e.sessions[w.i] = session{sh, gen}
	r.reopened.Add(1)
	return nil
}

// relogin logs in again through w's session if the engine has a PIN and the
// token says the session is not logged in (or, with force, whatever the
// session says). r.mu is held and the caller is inside the gate.
func (e *Engine) relogin(w *worker, force bool) error {
	if !e.login {
		return nil
	}
	if !force && loggedIn(w) {
		return nil
	}
	pin, err := e.pin(e.rec.ctx, w.gen)
	if err != nil {
		return err
	}
	err = e.mod.relogin(w.sh, string(pin))
	clear(pin)
	if err != nil {
		if errors.Is(err, offload.ErrAuth) {
			e.rec.authErr = err // never try a refused PIN again
		}
		return err
	}
	e.rec.relogged.Add(1)
	return nil
}

// pin calls the PIN callback outside the module's gate, which the caller
// is inside of in module life gen: a callback that takes its time (a
// prompt) must not hold up a re-initialisation. When the module was
// re-initialised meanwhile, the caller's session is void and pin fails with
// an error wrapping offload.ErrUnavailable.
func (e *Engine) pin(ctx context.Context, gen uint64) ([]byte, error) {
	e.mod.leave()
	pin, err := e.cfg.PIN(ctx)
	if e.mod.enter() != gen {
		clear(pin)
		return nil, fmt.Errorf("pkcs11: the module was re-initialised while the PIN callback ran: %w", offload.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("pkcs11: PIN callback: %w", err)
	}
	if len(pin) == 0 && e.token.Flags&pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH == 0 {
		// Only a token with its own PIN pad logs in without one.
		return nil, fmt.Errorf("pkcs11: Config.PIN returned an empty PIN for token %q (a nil Config.PIN opens it without logging in): %w",
			e.token.Label, offload.ErrAuth)
	}
	return pin, nil
}

// object returns h's object handle, finding the object again (by class,
// CKA_ID and CKA_LABEL) when a recovery has voided the cached handle. A
// search that finds nothing on a session that lost its login fails with
// errLoggedOut, never with offload.ErrNotFound.
func (e *Engine) object(w *worker, h *keyHandle) (pkcs11.ObjectHandle, error) {
	gen := e.rec.keyGen.Load()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen == gen {
		return h.obj, nil
	}
	if len(h.id) == 0 && h.label == "" {
		return 0, fmt.Errorf("pkcs11: the key's handle is void and it has neither CKA_ID nor CKA_LABEL to find it by: %w", offload.ErrNotFound)
	}
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, h.class)}
	if len(h.id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, h.id))
	}
	if h.label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.label))
	}
	objs, err := findObjects(w, tmpl, 2)
	if err != nil {
		return 0, err
	}
	switch len(objs) {
	case 0:
		if e.login && !loggedIn(w) {
			return 0, errLoggedOut
		}
		return 0, fmt.Errorf("pkcs11: key %q (id %x) is no longer on the token: %w", h.label, h.id, offload.ErrNotFound)
	case 1:
		h.obj, h.gen = objs[0], gen
		return h.obj, nil
	}
	return 0, fmt.Errorf("pkcs11: key %q (id %x) is ambiguous now: %w", h.label, h.id, offload.ErrInvalid)
}

// breaker is the engine's circuit breaker over recoveries.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu    sync.Mutex
	fails int       // consecutive failed recoveries
	until time.Time // while open: when the next probe may pass
}

// admit is called before a request is queued. With the breaker closed it
// admits; open, it fails fast with an error wrapping offload.ErrUnavailable until
// the cooldown has passed, and then admits one request as a probe (and
// starts another cooldown for the others).
func (b *breaker) admit() (probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < b.threshold {
		return false, nil
	}
	now := time.Now()
	if now.Before(b.until) {
		return false, b.errLocked(now)
	}
	b.until = now.Add(b.cooldown)
	return true, nil
}

// openErr returns the fail-fast error while the breaker is open, else nil.
func (b *breaker) openErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < b.threshold {
		return nil
	}
	return b.errLocked(time.Now())
}

func (b *breaker) errLocked(now time.Time) error {
	wait := max(b.until.Sub(now), 0)
	return fmt.Errorf("pkcs11: token unreachable after %d failed recoveries, next try after %v: %w",
		b.fails, wait.Round(time.Millisecond), offload.ErrUnavailable)
}

// failure records a failed recovery and reports whether it opened the
// breaker.
func (b *breaker) failure() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	if b.fails >= b.threshold {
		b.until = time.Now().Add(b.cooldown)
	}
	return b.fails == b.threshold
}

// success records a successful recovery: the breaker closes.
func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails = 0
	b.until = time.Time{}
}

// loggedIn reports whether w's session is logged in as the user. A session
// the token cannot describe counts as logged out.
func loggedIn(w *worker) bool {
	si, err := w.p.GetSessionInfo(w.sh)
	return err == nil && (si.State == pkcs11.CKS_RO_USER_FUNCTIONS || si.State == pkcs11.CKS_RW_USER_FUNCTIONS)
}
