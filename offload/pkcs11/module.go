//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/offload"
)

// modules holds one record per loaded module path.
//
// This is package-level state on purpose: C_Initialize and C_Finalize act on
// state that lives inside the module and is global to the process, and a
// login belongs to the process and the token, not to one session. Two
// engines on the same module must therefore share one initialisation and
// one login, and the last to close must be the only one to finalise. The
// mutex is held only while engines open and close, never around operations.
var modules struct {
	mu sync.Mutex
	m  map[string]*module
}

// A module is one loaded PKCS #11 library and its reference counts. Its
// fields are guarded by modules.mu, except gate and gen.
//
// Lock order: a goroutine inside the gate may take modules.mu (to log in or
// out); reinit shuts the gate first and takes modules.mu after. An engine's
// recovery.mu, when held, is taken before either.
type module struct {
	path   string
	ctx    *pkcs11.Ctx
	refs   int          // engines holding the module
	owned  bool         // this package called C_Initialize and may finalise
	logins map[uint]int // per slot: engines that logged in

	// gen counts the module's lives: it goes up each time recovery
	// finalises the module, after which every session and object handle
	// taken before is void. initialized says whether the current life has
	// begun (a re-initialisation that failed leaves it false).
	gen         atomic.Uint64
	initialized bool

	// gate keeps every engine's calls into the module apart from its
	// re-initialisation (see gate, enter and reinit).
	gate gate

	// serial says the module must be called by one thread at a time, and
	// call is held between enter and leave when it is. Set when the module
	// is loaded, never changed.
	serial bool
	call   sync.Mutex
}

// serialModule reports whether the module described by info must be
// called by one thread at a time. p11-kit's modules (its RPC client and its
// proxy, which can forward to a remote module the same way) carry every
// call of the process over one socket, and when the server dies under
// concurrent calls the client can leave threads blocked forever on a lock
// the failed call did not release (seen with p11-kit 0.24.1: threads in
// C_Sign and C_SignInit that never return, the server gone). One call at a
// time costs little there: the server answers a connection's calls one
// after the other anyway.
func serialModule(info pkcs11.Info) bool {
	return strings.TrimSpace(info.ManufacturerID) == "PKCS#11 Kit"
}

// quiesceBound is how long reinit waits for the calls inside the module to
// return before it gives up rather than finalise the module under them. A
// module whose device is gone answers at once (p11-kit's client module
// fails every call in flight with CKR_DEVICE_ERROR when its server dies);
// only a hung device keeps a call longer.
const quiesceBound = 10 * time.Second

// enter enters the module's gate (and, for a module called one thread at
// a time, takes its call lock) and returns the module's current life,
// which cannot change before leave: handles from that life (sessions,
// objects) are valid until then, and handles from another life must not be
// used, since the module may have given their numbers to others. Every
// call into the module from an engine, or sequence of calls that shares a
// handle, is made between enter and leave, except C_Initialize and
// C_Finalize, which reinit, acquireModule and release make. enter waits
// while the module is being re-initialised.
func (m *module) enter() uint64 {
	m.gate.enter()
	if m.serial {
		m.call.Lock()
	}
	return m.gen.Load()
}

// leave ends what enter began.
func (m *module) leave() {
	if m.serial {
		m.call.Unlock()
	}
	m.gate.leave()
}

// acquireModule loads and initialises the module at path, or takes another
// reference on it.
func acquireModule(path string) (*module, error) {
	if path == "" {
		return nil, fmt.Errorf("pkcs11: no module path: %w", offload.ErrInvalid)
	}
	key, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: module %q: %w: %w", path, err, offload.ErrInvalid)
	}
	if real, err := filepath.EvalSymlinks(key); err == nil {
		key = real
	}
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m := modules.m[key]
	if m == nil {
		if _, err := os.Stat(key); err != nil {
			return nil, fmt.Errorf("pkcs11: module %q: %w: %w", path, err, offload.ErrNotFound)
		}
		ctx := pkcs11.New(key)
		if ctx == nil {
			return nil, fmt.Errorf("pkcs11: %q is not a PKCS #11 module (it cannot be loaded or has no C_GetFunctionList): %w",
				path, offload.ErrInvalid)
		}
		m = &module{path: key, ctx: ctx, logins: make(map[uint]int)}
		if modules.m == nil {
			modules.m = make(map[string]*module)
		}
		modules.m[key] = m
	}
	if m.refs == 0 {
		err := m.ctx.Initialize()
		switch code, _ := ckCode(err); {
		case err == nil:
			m.owned, m.initialized = true, true
		case code == pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED:
			// Someone else in this process initialised it: use it, and leave
			// finalising to them.
			m.owned, m.initialized = false, true
		default:
			return nil, ckErr("C_Initialize", err)
		}
		// No engine uses the module yet: nothing reads serial meanwhile.
		info, err := m.ctx.GetInfo()
		if err != nil {
			m.finalize()
			return nil, ckErr("C_GetInfo", err)
		}
		m.serial = serialModule(info)
	}
	m.refs++
	return m, nil
}

// release drops a reference; the last one finalises the module. The library
// itself stays loaded: unloading modules that link OpenSSL (SoftHSM among
// them) is not safe in every version, and a later Open reuses it.
func (m *module) release() error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	return m.finalize()
}

// finalize finalises a module no engine holds, if this package initialised
// it. modules.mu is held.
func (m *module) finalize() error {
	if !m.owned || !m.initialized {
		return nil
	}
	m.owned, m.initialized = false, false
	err := m.ctx.Finalize()
	if code, _ := ckCode(err); code == pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED {
		err = nil // finalised underneath us: nothing left to release
	}
	return ckErr("C_Finalize", err)
}

// generation returns the module's current life (see module.gen).
func (m *module) generation() uint64 { return m.gen.Load() }

// reinit finalises and initialises the module again, for an engine whose
// sessions were opened in life seen and that found the module lost (the
// module said CKR_CRYPTOKI_NOT_INITIALIZED or CKR_DEVICE_REMOVED, or could
// not open a session any more). If another engine already did it since
// seen, it does nothing: engines sharing the module re-initialise it once
// between them, and each then reopens its own sessions. It reports whether
// this call re-initialised the module.
//
// It first quiesces the module: it shuts the gate, so no worker of any
// engine on the module is inside a call when C_Finalize runs and none
// enters before C_Initialize has returned. The caller must not be inside
// the gate. When calls are still inside after quiesceBound, or ctx ends,
// it fails and leaves the module as it was. A module that cannot be
// initialised again fails with an error wrapping offload.ErrUnavailable.
func (m *module) reinit(ctx context.Context, seen uint64) (bool, error) {
	if m.gen.Load() != seen && m.isInitialized() {
		return false, nil // done by another engine: no need to stop everyone
	}
	if err := m.gate.shut(ctx, quiesceBound); err != nil {
		return false, err
	}
	defer m.gate.open()
	modules.mu.Lock()
	defer modules.mu.Unlock()
	if m.gen.Load() != seen && m.initialized {
		return false, nil
	}
	if m.initialized {
		m.ctx.Finalize() // the module is lost already: its answer changes nothing
		m.initialized = false
		m.gen.Add(1)
	}
	err := m.ctx.Initialize()
	if code, _ := ckCode(err); err != nil && code != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
		return false, fmt.Errorf("%w: %w", ckErr("C_Initialize", err), offload.ErrUnavailable)
	}
	m.initialized = true
	m.owned = err == nil || m.owned
	return true, nil
}

// isInitialized reports whether the module's current life has begun.
func (m *module) isInitialized() bool {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	return m.initialized
}

// relogin logs the process in again through sh after the token forgot the
// login (a closed last session, a logout or a restart underneath). It does
// not change the login counts: the engines that wanted a login still do.
// The caller is inside the gate, as for login and logout.
func (m *module) relogin(sh pkcs11.SessionHandle, pin string) error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	err := m.ctx.Login(sh, pkcs11.CKU_USER, pin)
	if code, _ := ckCode(err); err != nil && code != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
		return ckErr("C_Login", err)
	}
	return nil
}

// login logs the process in to the token in slot through session sh (a
// token where the process is logged in already does not check the PIN).
func (m *module) login(sh pkcs11.SessionHandle, slot uint, pin string) error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	// Log in even when another engine did: the login may have gone since
	// (the process's last session on the token closed underneath them).
	err := m.ctx.Login(sh, pkcs11.CKU_USER, pin)
	if code, _ := ckCode(err); err != nil && code != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
		return ckErr("C_Login", err)
	}
	m.logins[slot]++
	return nil
}

// logout drops an engine's login on slot; the last one logs out through sh.
func (m *module) logout(sh pkcs11.SessionHandle, slot uint) error {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	m.logins[slot]--
	if m.logins[slot] > 0 {
		return nil
	}
	delete(m.logins, slot)
	err := m.ctx.Logout(sh)
	if code, _ := ckCode(err); code == pkcs11.CKR_USER_NOT_LOGGED_IN || gone(code) {
		return nil // logged out, or the session or module is gone already
	}
	return ckErr("C_Logout", err)
}

var errNoToken = errors.New("no token matches")
