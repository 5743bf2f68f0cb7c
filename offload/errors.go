package offload

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error an engine or adapter returns that falls into
// one of these classes matches it with errors.Is; the device's own error
// (a CKR_* code, a TPM_RC, a CPA status) stays further down the chain.
var (
	// ErrNotReady is what Future.Poll answers while the operation is pending.
	ErrNotReady = errors.New("offload: not ready")

	// ErrBusy reports that the engine is at its in-flight limit and the
	// request asked not to wait (Call.NoWait).
	ErrBusy = errors.New("offload: engine busy")

	// ErrClosed reports a call on, or an operation failed by, a closed engine.
	ErrClosed = errors.New("offload: engine closed")

	// ErrNotFound reports that a key or other object looked up does not exist.
	ErrNotFound = errors.New("offload: not found")

	// ErrUnavailable reports that the device cannot be reached now: a token
	// pulled out, a module that lost its device, a server in front of the
	// device that is down. Whatever the request named may well exist (it
	// is not ErrNotFound), and the engine is not merely at its limit (it is
	// not ErrBusy): the request may succeed once the device is back, which
	// the engine finds out by itself.
	ErrUnavailable = errors.New("offload: device unavailable")

	// ErrAuth reports a failed login or a missing authorisation (wrong PIN,
	// wrong password, a key that requires a login that has not happened).
	ErrAuth = errors.New("offload: authentication failed")

	// ErrInvalid reports bad input from the caller: a digest of the wrong
	// length, options of the wrong type for the key, a nil key, and so on.
	ErrInvalid = errors.New("offload: invalid input")

	// ErrUnsupported reports an operation or algorithm the engine cannot do.
	// It is returned before anything reaches the device, and it wraps
	// errors.ErrUnsupported, so errors.Is(err, errors.ErrUnsupported) holds too.
	ErrUnsupported = fmt.Errorf("offload: %w", errors.ErrUnsupported)

	// ErrForeignKey reports a key handed to an engine that did not make it.
	ErrForeignKey = errors.New("offload: key belongs to another engine")
)

// OpError is the error type of a failed operation: which engine, which kind
// of operation, and the cause. Unwrap exposes the cause, so errors.Is and
// errors.As see through it to the sentinels and to the device's own error.
type OpError struct {
	Engine string // the engine's name, as in Info.Name
	Op     Op     // the kind of operation
	Err    error  // the cause; never nil
}

// Error returns "engine op: cause". A leading "engine: " or "offload: " on
// the cause's text is left out: the OpError says both already.
func (e *OpError) Error() string {
	msg := e.Err.Error()
	for {
		if m, ok := strings.CutPrefix(msg, e.Engine+": "); ok && e.Engine != "" {
			msg = m
		} else if m, ok := strings.CutPrefix(msg, "offload: "); ok {
			msg = m
		} else {
			break
		}
	}
	return e.Engine + " " + e.Op.String() + ": " + msg
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Errorf returns an *OpError for engine and op whose cause is formatted like
// fmt.Errorf, so a %w verb keeps a sentinel or a device error in the chain.
func Errorf(engine string, op Op, format string, args ...any) error {
	return &OpError{Engine: engine, Op: op, Err: fmt.Errorf(format, args...)}
}

// Wrap returns err as an *OpError for engine and op. It returns nil for a nil
// err, and err itself when it already is an *OpError.
func Wrap(engine string, op Op, err error) error {
	if err == nil {
		return nil
	}
	var oe *OpError
	if errors.As(err, &oe) {
		return err
	}
	return &OpError{Engine: engine, Op: op, Err: err}
}
