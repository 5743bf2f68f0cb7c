//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/offload"
)

const name = "pkcs11"

// Engine is an offload.Engine on one PKCS #11 token. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg   Config
	mod   *module
	p     *pkcs11.Ctx
	slot  uint // the token's slot at Open; recovery may move it (curSlot)
	token pkcs11.TokenInfo
	login bool
	flags uint // C_OpenSession flags

	rec   recovery // recovery state, breaker and counters
	brk   breaker
	info  offload.Info
	mechs map[uint]pkcs11.MechanismInfo

	// x runs every operation on a session: on the engine's workers, one
	// per session, or on a blocking caller's goroutine when one is free.
	x *exec.Executor[*worker]
	// closed is set when Close begins, for the checks operations make
	// before they are submitted; the executor refuses them after it too.
	closed   atomic.Bool
	sessions []session // one per worker; the zero session while a worker has none

	closeOnce sync.Once
	closeErr  error

	// names serialises the check-then-create of named objects (Generate,
	// ImportCertificate), so two of them in this engine cannot both find a
	// name free.
	names sync.Mutex

	// updateHook, when set (tests only, before any hash session starts),
	// runs on a pinned worker before each C_DigestUpdate.
	updateHook func()
	// workHook, when set (tests only, before the operations it concerns
	// are submitted), runs on the worker after an operation's work returns
	// and before its result is delivered.
	workHook func()
	// releaseHook, when set (tests only, like workHook), runs on the worker
	// after a result that lost the race to the caller was released.
	releaseHook func(v any)
	// sendHook, when set (tests only, like updateHook), runs in a hash
	// session's Update or Final before the request goes to the worker.
	sendHook func(s *stream)
}

var (
	_ offload.Engine    = (*Engine)(nil)
	_ offload.Generator = (*Engine)(nil)
)

// worker is what an operation runs with: the module and one session. The
// executor hands it to one goroutine at a time (a worker, or a blocking
// caller that found it free), so no two goroutines touch it at once.
type worker struct {
	i      int // index in Engine.sessions
	p      *pkcs11.Ctx
	sh     pkcs11.SessionHandle
	gen    uint64 // the module's life the session was opened in
	broken bool   // the session was lost and not yet reopened
	// reset says the session works but must be replaced before its next
	// operation: the token refused to end a digest on it.
	reset bool
}

// session is a worker's session and the module life it was opened in: a
// handle from another life must never be used (see module.enter).
type session struct {
	sh  pkcs11.SessionHandle
	gen uint64
}

// Open loads the module (or takes another reference on it), finds the token,
// opens MaxInFlight sessions, logs in with the PIN and starts one worker per
// session. A token that does not match is an error wrapping
// offload.ErrNotFound; a PIN the token refuses, one wrapping offload.ErrAuth
// (the PIN is tried once, never again). Open runs on the caller's goroutine;
// every operation after it runs on one of the sessions, on a worker or, for
// a blocking request that finds one free, on its caller's goroutine (see
// the package doc).
func Open(ctx context.Context, c Config) (*Engine, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("pkcs11: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mod, err := acquireModule(c.Module)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: c, mod: mod, p: mod.ctx}
	e.brk.threshold, e.brk.cooldown = c.BreakerThreshold, c.BreakerCooldown
	e.rec.ctx, e.rec.cancel = context.WithCancel(context.Background())
	gen := mod.enter()
	if err := e.open(ctx, gen); err != nil {
		e.rec.cancel()
		for _, s := range e.sessions {
			e.p.CloseSession(s.sh)
		}
		mod.leave()
		mod.release()
		return nil, err
	}
	mod.leave()
	e.rec.slot.Store(uint64(e.slot))
	e.rec.modGen = gen
	workers := make([]*worker, len(e.sessions))
	for i, s := range e.sessions {
		workers[i] = &worker{i: i, p: e.p, sh: s.sh, gen: gen}
	}
	e.x = exec.New(exec.Config[*worker]{
		Name:        name,
		MaxInFlight: c.MaxInFlight,
		States:      workers,
		Device:      (*device)(e),
		Gate:        (*device)(e),
	})
	return e, nil
}

// open finds the token, opens the sessions and logs in, inside the
// module's gate in the module's life gen.
func (e *Engine) open(ctx context.Context, gen uint64) error {
	slot, err := e.findToken()
	if errors.Is(err, errNoToken) {
		err = fmt.Errorf("%w: %w", err, offload.ErrNotFound)
	}
	if err != nil {
		return err
	}
	e.slot = slot
	if e.token, err = e.p.GetTokenInfo(slot); err != nil {
		return ckErr("C_GetTokenInfo", err)
	}
	if err := e.readMechanisms(); err != nil {
		return err
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION)
	for range e.cfg.MaxInFlight {
		sh, err := e.p.OpenSession(slot, flags)
		if code, _ := ckCode(err); code == pkcs11.CKR_TOKEN_WRITE_PROTECTED {
			flags = pkcs11.CKF_SERIAL_SESSION
			sh, err = e.p.OpenSession(slot, flags)
		}
		if err != nil {
			return ckErr("C_OpenSession", err)
		}
		e.sessions = append(e.sessions, session{sh, gen})
	}
	e.flags = flags
	if e.cfg.PIN == nil {
		return nil
	}
	pin, err := e.pin(ctx, gen)
	if err != nil {
		return err
	}
	err = e.mod.login(e.sessions[0].sh, slot, string(pin))
	clear(pin)
	if err != nil {
		return err
	}
	e.login = true
	return nil
}

// findToken returns the slot of the one token that matches the Config.
func (e *Engine) findToken() (uint, error) {
	slots, err := e.p.GetSlotList(true)
	if err != nil {
		return 0, ckErr("C_GetSlotList", err)
	}
	var found []uint
	for _, s := range slots {
		if e.cfg.Slot != nil && *e.cfg.Slot != s {
			continue
		}
		ti, err := e.p.GetTokenInfo(s)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue // gone meanwhile, or a blank token (SoftHSM always offers one)
		}
		if e.cfg.TokenLabel != "" && ti.Label != e.cfg.TokenLabel {
			continue
		}
		if e.cfg.TokenSerial != "" && ti.SerialNumber != e.cfg.TokenSerial {
			continue
		}
		found = append(found, s)
	}
	switch len(found) {
	case 0:
		// Missing at Open, unreachable at recovery: the caller adds which.
		return 0, fmt.Errorf("pkcs11: %w (label %q, serial %q, slot %v); %s",
			errNoToken, e.cfg.TokenLabel, e.cfg.TokenSerial, slotString(e.cfg.Slot), e.tokensSeen(slots))
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("pkcs11: %d tokens match (label %q, serial %q, slot %v); say which: %w",
		len(found), e.cfg.TokenLabel, e.cfg.TokenSerial, slotString(e.cfg.Slot), offload.ErrInvalid)
}

// tokensSeen describes the initialised tokens in slots, for an error that
// says none matched.
func (e *Engine) tokensSeen(slots []uint) string {
	var seen []string
	for _, s := range slots {
		ti, err := e.p.GetTokenInfo(s)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		seen = append(seen, fmt.Sprintf("label %q serial %q slot %d", ti.Label, ti.SerialNumber, s))
	}
	if len(seen) == 0 {
		return fmt.Sprintf("no initialised token in the module's %d slots", len(slots))
	}
	if len(seen) == 1 {
		return "the one token seen: " + seen[0]
	}
	return fmt.Sprintf("%d tokens seen: %s", len(seen), strings.Join(seen, "; "))
}

func slotString(s *uint) string {
	if s == nil {
		return "any"
	}
	return fmt.Sprint(*s)
}

// Mechanisms the miekg/pkcs11 v1.1.2 constants lack (PKCS #11 3.0).
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057

	ckfSign    = pkcs11.CKF_SIGN
	ckfDecrypt = pkcs11.CKF_DECRYPT
)

// readMechanisms builds Info from C_GetMechanismList and C_GetMechanismInfo.
func (e *Engine) readMechanisms() error {
	list, err := e.p.GetMechanismList(e.slot)
	if err != nil {
		return ckErr("C_GetMechanismList", err)
	}
	e.mechs = make(map[uint]pkcs11.MechanismInfo, len(list))
	for _, m := range list {
		mi, err := e.p.GetMechanismInfo(e.slot, []*pkcs11.Mechanism{m})
		if err != nil {
			continue
		}
		e.mechs[m.Mechanism] = mi
	}
	has := func(m, flag uint) bool {
		mi, ok := e.mechs[m]
		return ok && mi.Flags&flag != 0
	}
	info := offload.Info{Name: name, MaxInFlight: e.cfg.MaxInFlight, MaxInline: e.cfg.MaxInline, MaxGCM: maxGCM}
	if has(pkcs11.CKM_ECDSA, ckfSign) {
		info.Algorithms = append(info.Algorithms, offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521)
	}
	if has(pkcs11.CKM_RSA_PKCS, ckfSign) {
		info.Algorithms = append(info.Algorithms, offload.RSAPKCS1v15)
	}
	if has(pkcs11.CKM_RSA_PKCS_PSS, ckfSign) {
		info.Algorithms = append(info.Algorithms, offload.RSAPSS)
	}
	if has(pkcs11.CKM_RSA_PKCS_OAEP, ckfDecrypt) || has(pkcs11.CKM_RSA_X_509, ckfDecrypt) {
		info.Algorithms = append(info.Algorithms, offload.RSAOAEP)
	}
	if has(pkcs11.CKM_RSA_PKCS, ckfDecrypt) {
		info.Algorithms = append(info.Algorithms, offload.RSAPKCS1v15Decrypt)
	}
	if has(ckmEdDSA, ckfSign) {
		info.Algorithms = append(info.Algorithms, offload.Ed25519)
	}
	for m, a := range map[uint]offload.Algorithm{
		pkcs11.CKM_AES_GCM: offload.AESGCM, pkcs11.CKM_AES_CBC: offload.AESCBC, pkcs11.CKM_AES_CTR: offload.AESCTR,
	} {
		if has(m, pkcs11.CKF_ENCRYPT) && has(m, ckfDecrypt) {
			info.Algorithms = append(info.Algorithms, a)
		}
	}
	for h, m := range digestMechs {
		if has(m, pkcs11.CKF_DIGEST) {
			a, _ := offload.HashAlgorithm(h)
			info.Algorithms = append(info.Algorithms, a) // served by HashSession
		}
	}
	info.Algorithms = append(info.Algorithms, offload.Random)
	slices.Sort(info.Algorithms)
	if mi, ok := e.mechs[pkcs11.CKM_RSA_PKCS]; ok {
		info.MinRSABits, info.MaxRSABits = int(mi.MinKeySize), int(mi.MaxKeySize)
	}
	e.info = info
	return nil
}

// hasMech reports whether the token lists mechanism m with flag.
func (e *Engine) hasMech(m, flag uint) bool {
	mi, ok := e.mechs[m]
	return ok && mi.Flags&flag != 0
}

// Info describes the engine. Algorithms lists only what the token's
// mechanism list offers, and Random.
func (e *Engine) Info() offload.Info {
	i := e.info
	i.Algorithms = slices.Clone(i.Algorithms)
	return i
}

// Stats returns the engine's counters.
func (e *Engine) Stats() offload.Snapshot { return e.x.Stats() }

// Close fails queued operations with ErrClosed, waits for the ones the token
// is working on (on workers and on blocking callers' goroutines), logs out
// (when no other engine in the process is logged in to the token), closes
// the sessions and finalises the module when this is its last engine. Open
// and Close call the module on the caller's goroutine outside the
// sessions' bound; every other call holds a session. Calls after the first
// return the first one's error.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		e.rec.cancel() // a recovery waiting on the PIN callback gives up
		e.x.Close()

		var errs []error
		// Sessions from an earlier life of the module died with it (another
		// engine re-initialised it): their numbers may be others' now.
		gen := e.mod.enter()
		live := slices.DeleteFunc(slices.Clone(e.sessions), func(s session) bool { return s.sh == 0 || s.gen != gen })
		if e.login {
			var sh pkcs11.SessionHandle
			if len(live) > 0 {
				sh = live[0].sh
			}
			errs = append(errs, e.mod.logout(sh, e.curSlot()))
		}
		for _, s := range live {
			err := e.p.CloseSession(s.sh)
			if code, _ := ckCode(err); gone(code) {
				err = nil // lost underneath us and never recovered
			}
			errs = append(errs, ckErr("C_CloseSession", err))
		}
		e.mod.leave()
		errs = append(errs, e.mod.release())
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// submit admits work and queues it for a worker. count says whether it is
// one of the engine's operations (counted in Stats, errors wrapped in an
// *offload.OpError for op) or housekeeping such as a key lookup. work must
// not read the caller's memory: copy inputs first. work may run twice, when
// the token lost the worker's session and recovery restored it (see
// device), so it must be safe to repeat; submitOnce is for work that is not.
func submit[T any](e *Engine, ctx context.Context, op offload.Op, count bool, call offload.Call, work func(*worker) (T, error)) *offload.Future[T] {
	return submitJob(e, ctx, op, count, false, call, work, nil)
}

// submitSecret is submit for a counted operation whose result is secret
// (plaintext, random bytes): a result the caller never receives, because
// its context ended first, is zeroed.
func submitSecret(e *Engine, ctx context.Context, op offload.Op, call offload.Call, work func(*worker) ([]byte, error)) *offload.Future[[]byte] {
	return submitJob(e, ctx, op, true, false, call, work, clearBytes)
}

// clearBytes zeroes b.
func clearBytes(b []byte) { clear(b) }

// submitOnce is submit for work that must not be repeated (a key
// generation): after a recovery its error is returned, not retried.
func submitOnce[T any](e *Engine, ctx context.Context, op offload.Op, count bool, call offload.Call, work func(*worker) (T, error)) *offload.Future[T] {
	return submitJob(e, ctx, op, count, true, call, work, nil)
}

// submitJob hands work to the executor, through the circuit breaker;
// release, when not nil, frees a result that loses the race to the
// context's end.
func submitJob[T any](e *Engine, ctx context.Context, op offload.Op, count, once bool, call offload.Call, work func(*worker) (T, error), release func(T)) *offload.Future[T] {
	if e.closed.Load() {
		return exec.Fail[T](e.x, op, offload.ErrClosed)
	}
	probe, err := e.brk.admit()
	if err != nil {
		if !count {
			return offload.Failed[T](err)
		}
		return exec.Fail[T](e.x, op, err)
	}
	if probe {
		work = probed(e, work)
	}
	if hook := e.workHook; hook != nil {
		inner := work
		work = func(w *worker) (T, error) {
			v, err := inner(w)
			hook()
			return v, err
		}
	}
	if hook := e.releaseHook; release != nil && hook != nil {
		inner := release
		release = func(v T) { inner(v); hook(v) }
	}
	return exec.Submit(e.x, ctx, exec.Op[*worker, T]{
		Kind:     op,
		Call:     call,
		Internal: !count,
		Probe:    probe,
		Repeat:   !once,
		Work:     work,
		Release:  release,
	})
}

// probed returns work that closes the breaker when it succeeds: the probe
// found the token working.
func probed[T any](e *Engine, work func(*worker) (T, error)) func(*worker) (T, error) {
	return func(w *worker) (T, error) {
		v, err := work(w)
		if err == nil {
			e.brk.success()
		}
		return v, err
	}
}

// device is the engine as the executor's exec.Device and exec.Gate. As the
// gate it keeps every call on a worker's session inside the module's gate
// (module.enter), where the module's life cannot change, and refuses a
// session from an earlier life. As the device it readies a worker's session
// before each call and recovers it after a failure that says the token lost
// it (see Engine.Recovery), outside the gate, which a recovery that
// re-initialises the module must shut. What to do on which CKR code is
// decided here; the executor retries the call once when this says the
// session was rebuilt, the work is safe to repeat and the caller still
// waits.
type device Engine

// Prepare recovers w first when its session is known to be lost, was
// opened in an earlier life of the module, or must be replaced.
func (d *device) Prepare(w *worker, probe bool) error {
	e := (*Engine)(d)
	if w.broken || w.reset || w.gen != e.mod.generation() {
		return e.recoverWorker(w, probe, 0)
	}
	return nil
}

// Enter enters the module's gate for a call on w's session, unless the
// module was re-initialised since the session was opened (between Prepare
// and here): then it fails with errStale and the executor readies w again.
func (d *device) Enter(w *worker) error {
	e := (*Engine)(d)
	if e.mod.enter() != w.gen || w.broken {
		e.mod.leave()
		return errStale
	}
	return nil
}

// Leave leaves the module's gate.
func (d *device) Leave(*worker) { (*Engine)(d).mod.leave() }

// errStale is a call refused because the worker's session died with an
// earlier life of the module (another worker re-initialised it): the handle
// must not be used, since the module may have given its number to another
// session. The executor reopens the session and calls again; a hash
// session's digest went with the old session and fails with it.
var errStale = &staleError{}

// staleError is errStale's type: it wraps exec.ErrStale, for the executor,
// and offload.ErrUnavailable, for the caller of a request that met it
// StaleTries times in a row or of a hash session that lost its digest.
type staleError struct{}

func (*staleError) Error() string {
	return "pkcs11: the module was re-initialised since the worker's session was opened"
}

func (*staleError) Is(target error) bool {
	return target == exec.ErrStale || target == offload.ErrUnavailable
}

// Recover acts on a failure that says the session, the login or the module
// was lost, or that a cached object handle is void: it restores w (a void
// handle is looked up again on the next use) and reports whether the call
// may be repeated.
func (d *device) Recover(w *worker, probe bool, err error) (bool, error) {
	e := (*Engine)(d)
	code, ok := ckCode(err)
	if errors.Is(err, errLoggedOut) {
		code, ok = pkcs11.CKR_USER_NOT_LOGGED_IN, true
	}
	switch {
	case !ok:
		return false, err
	case staleHandle(code):
		// Some tokens (SoftHSM among them) void the handles of private
		// objects when the login goes, and then report the handle, not the
		// login: check the login too.
		if e.login {
			if rerr := e.recoverWorker(w, probe, code); rerr != nil {
				return false, &recoveryError{err, rerr}
			}
		}
		e.rec.keyGen.Add(1)
		return true, err
	case gone(code) && (code != pkcs11.CKR_USER_NOT_LOGGED_IN || e.login):
		if rerr := e.recoverWorker(w, probe, code); rerr != nil {
			return false, &recoveryError{err, rerr}
		}
		return true, err
	}
	return false, err
}

// errClosed is the error of a call on a closed engine.
var errClosed = fmt.Errorf("pkcs11: %w", offload.ErrClosed)

// failed returns a future failed with err for op.
func failed[T any](op offload.Op, err error) *offload.Future[T] {
	return offload.Failed[T](offload.Wrap(name, op, err))
}

// Random returns req.N bytes from C_GenerateRandom. N may not exceed
// Info().MaxInline; 0 is answered at once with no bytes, without the token
// (see offload.RandomRequest).
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	if e.closed.Load() {
		return failed[[]byte](offload.OpRandom, errClosed)
	}
	empty, err := req.Check(e.cfg.MaxInline)
	switch {
	case err != nil:
		return failed[[]byte](offload.OpRandom, fmt.Errorf("pkcs11: %w", err))
	case empty:
		return offload.Resolved([]byte{}, nil)
	}
	n := req.N
	return submitSecret(e, ctx, offload.OpRandom, req.Call, func(w *worker) ([]byte, error) {
		b, err := w.p.GenerateRandom(w.sh, n)
		if err != nil {
			return nil, ckErr("C_GenerateRandom", err)
		}
		if len(b) != n {
			return nil, fmt.Errorf("pkcs11: C_GenerateRandom returned %d bytes, want %d", len(b), n)
		}
		return b, nil
	})
}
