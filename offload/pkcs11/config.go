package pkcs11

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/offcrypt/offcrypt/internal/optcheck"
	"github.com/offcrypt/offcrypt/offload"
)

// Config configures an engine. It is copied at Open and never read again.
// Zero values mean the defaults; a negative number or duration is refused by
// Open with an error wrapping offload.ErrInvalid that names the field and
// its value ("pkcs11: Config.MaxInFlight is -1: ...").
type Config struct {
	// Module is the path of the PKCS #11 module (a shared library), for
	// example /usr/lib/softhsm/libsofthsm2.so.
	Module string

	// TokenLabel, TokenSerial and Slot choose the token: every one that is
	// set must match, and exactly one initialised token must. With none set
	// the module must have exactly one initialised token.
	TokenLabel  string
	TokenSerial string
	Slot        *uint

	// PIN returns the user PIN. It is called at Open, and again only when
	// the token has forgotten the login (its sessions were closed, it was
	// logged out or restarted underneath the engine) and recovery logs in
	// anew. A PIN the token refuses is never tried again: after such a
	// refusal recovery fails with the token's error (offload.ErrAuth) until
	// the engine is closed. Nil opens the token without logging in (public
	// objects only). A login belongs to the process: when another engine in
	// the process is already logged in to the token, the token does not
	// check the PIN again.
	PIN func(context.Context) ([]byte, error)

	// MaxInFlight is the number of operations admitted at once, which is
	// also the number of sessions the engine opens and of worker goroutines
	// it runs. Zero means 4; at most 1<<20.
	MaxInFlight int

	// MaxInline is the largest payload one request may carry, in bytes, and
	// the size of the parts in which a longer GCM message is streamed to the
	// token (see Engine.Cipher). Zero means 32 KiB.
	MaxInline int

	// BreakerThreshold is the number of consecutive failed recoveries
	// after which the engine stops sending work to the token and fails
	// every request at once with an error wrapping offload.ErrUnavailable, for
	// BreakerCooldown; then one request is let through as a probe, and a
	// success closes the breaker again. Zero means 5.
	BreakerThreshold int

	// BreakerCooldown is how long the open breaker fails requests before
	// it lets a probe through. Zero means 2 s.
	BreakerCooldown time.Duration
}

const (
	defaultMaxInFlight      = 4
	defaultMaxInline        = 32 << 10
	defaultBreakerThreshold = 5
	defaultBreakerCooldown  = 2 * time.Second
)

// withDefaults returns c with its zero values replaced by the defaults. A
// negative value is refused, with an error wrapping offload.ErrInvalid that
// names the field and its value.
func (c Config) withDefaults() (Config, error) {
	if err := optcheck.Check("pkcs11",
		optcheck.Count("Config.MaxInFlight", c.MaxInFlight),
		optcheck.Int("Config.MaxInline", c.MaxInline),
		optcheck.Int("Config.BreakerThreshold", c.BreakerThreshold),
		optcheck.Duration("Config.BreakerCooldown", c.BreakerCooldown)); err != nil {
		return Config{}, err
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	if c.MaxInline == 0 {
		c.MaxInline = defaultMaxInline
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = defaultBreakerThreshold
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = defaultBreakerCooldown
	}
	return c, nil
}

// ConfigFromURI returns the Config an RFC 7512 URI describes: module-path,
// the token (token, serial, slot-id), max-sessions as MaxInFlight, and a PIN
// from pin-value or from pin-source, a file named by a "file:" URI or an
// absolute path and read when the engine opens (one trailing newline is
// dropped). Other pin-source schemes fail with offload.ErrUnsupported.
// Object attributes are ignored: pass the same URI to Engine.FindKey.
func ConfigFromURI(u *URI) (Config, error) {
	if u == nil {
		return Config{}, fmt.Errorf("pkcs11: nil URI: %w", offload.ErrInvalid)
	}
	if u.ModulePath == "" {
		return Config{}, fmt.Errorf("pkcs11: URI has no module-path: %w", offload.ErrInvalid)
	}
	c := Config{
		Module:      u.ModulePath,
		TokenLabel:  u.Token,
		TokenSerial: u.Serial,
		MaxInFlight: u.MaxSessions,
	}
	if u.SlotID != nil {
		s := *u.SlotID
		c.Slot = &s
	}
	switch {
	case u.PinValue != "" && u.PinSource != "":
		return Config{}, fmt.Errorf("pkcs11: URI has both pin-value and pin-source: %w", offload.ErrInvalid)
	case u.PinValue != "":
		pin := u.PinValue
		c.PIN = func(context.Context) ([]byte, error) { return []byte(pin), nil }
	case u.PinSource != "":
		path, ok := strings.CutPrefix(u.PinSource, "file:")
		if !ok && !strings.HasPrefix(path, "/") {
			return Config{}, fmt.Errorf("pkcs11: pin-source %q: only files are supported: %w", u.PinSource, offload.ErrUnsupported)
		}
		if p, ok := strings.CutPrefix(path, "//"); ok { // file:///run/pin or file://localhost/run/pin
			host, rest, _ := strings.Cut(p, "/")
			if host != "" && host != "localhost" {
				return Config{}, fmt.Errorf("pkcs11: pin-source %q: a file on another host: %w", u.PinSource, offload.ErrUnsupported)
			}
			path = "/" + rest
		}
		if !strings.HasPrefix(path, "/") {
			return Config{}, fmt.Errorf("pkcs11: pin-source %q: not an absolute path: %w", u.PinSource, offload.ErrInvalid)
		}
		c.PIN = func(context.Context) ([]byte, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("pkcs11: pin-source: %w", err)
			}
			b, _ = bytes.CutSuffix(b, []byte("\n"))
			return b, nil
		}
	}
	return c, nil
}

// RecoveryStats counts what Engine.Recovery reports: the engine's
// recoveries from sessions, logins and modules lost underneath it.
type RecoveryStats struct {
	Reopened      uint64 // sessions opened again after the token lost them
	Relogged      uint64 // logins made again after the token forgot one
	Reinitialized uint64 // times this engine finalised and initialised the module again
	Retried       uint64 // operations retried once after a successful recovery
	Failed        uint64 // recoveries that failed
	BreakerTrips  uint64 // times the circuit breaker opened
}
