package pkcs11

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

func TestConfigFromURI(t *testing.T) {
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		uri     string
		want    Config
		pin     string // "" when no PIN callback
		err     error
		pinFail bool // the PIN callback fails
	}{
		{"pkcs11:token=web;serial=12;slot-id=3;object=k?module-path=/m.so&max-sessions=8&pin-value=1234",
			Config{Module: "/m.so", TokenLabel: "web", TokenSerial: "12", Slot: uintp(3), MaxInFlight: 8}, "1234", nil, false},
		{"pkcs11:token=web?module-path=/m.so", Config{Module: "/m.so", TokenLabel: "web"}, "", nil, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=file:" + pinFile, Config{Module: "/m.so", TokenLabel: "web"}, "4321", nil, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=file://" + pinFile, Config{Module: "/m.so", TokenLabel: "web"}, "4321", nil, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=" + pinFile, Config{Module: "/m.so", TokenLabel: "web"}, "4321", nil, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=file:" + pinFile + "-missing", Config{Module: "/m.so", TokenLabel: "web"}, "", nil, true},
		{"pkcs11:token=web?module-path=/m.so&pin-source=file://host/pin", Config{}, "", offload.ErrUnsupported, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=file://host", Config{}, "", offload.ErrUnsupported, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=%7C/bin/ask", Config{}, "", offload.ErrUnsupported, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=file:relative", Config{}, "", offload.ErrInvalid, false},
		{"pkcs11:token=web?module-path=/m.so&pin-source=/p&pin-value=1", Config{}, "", offload.ErrInvalid, false},
		{"pkcs11:token=web", Config{}, "", offload.ErrInvalid, false},
	} {
		t.Run(tt.uri, func(t *testing.T) {
			u, err := ParseURI(tt.uri)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ConfigFromURI(u)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pinFn := c.PIN
			c.PIN = nil
			if c.Module != tt.want.Module || c.TokenLabel != tt.want.TokenLabel || c.TokenSerial != tt.want.TokenSerial ||
				c.MaxInFlight != tt.want.MaxInFlight || (c.Slot == nil) != (tt.want.Slot == nil) || (c.Slot != nil && *c.Slot != *tt.want.Slot) {
				t.Fatalf("config %+v, want %+v", c, tt.want)
			}
			if tt.pin == "" && !tt.pinFail {
				if pinFn != nil {
					t.Fatal("unexpected PIN callback")
				}
				return
			}
			pin, err := pinFn(context.Background())
			if tt.pinFail {
				if err == nil {
					t.Fatal("PIN callback did not fail")
				}
				return
			}
			if err != nil || string(pin) != tt.pin {
				t.Fatalf("PIN %q, %v", pin, err)
			}
		})
	}
	if _, err := ConfigFromURI(nil); !errors.Is(err, offload.ErrInvalid) {
		t.Fatal(err)
	}
}

// Zero fields take the defaults; a negative one is refused, naming the field
// and its value, before anything is loaded.
func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxInFlight != defaultMaxInFlight || c.MaxInline != defaultMaxInline ||
		c.BreakerThreshold != defaultBreakerThreshold || c.BreakerCooldown != defaultBreakerCooldown {
		t.Fatalf("defaults %+v", c)
	}
	set := Config{MaxInFlight: 2, MaxInline: 100, BreakerThreshold: 1, BreakerCooldown: time.Millisecond}
	if c, err := set.withDefaults(); err != nil || c.MaxInFlight != 2 || c.MaxInline != 100 || c.BreakerThreshold != 1 || c.BreakerCooldown != time.Millisecond {
		t.Fatalf("set values: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{MaxInFlight: -1}, "pkcs11: Config.MaxInFlight is -1: "},
		{Config{MaxInFlight: 1 << 40}, "pkcs11: Config.MaxInFlight is 1099511627776: offload: invalid input: at most 1048576"},
		{Config{MaxInline: -1}, "pkcs11: Config.MaxInline is -1: "},
		{Config{BreakerThreshold: -1}, "pkcs11: Config.BreakerThreshold is -1: "},
		{Config{BreakerCooldown: -time.Second}, "pkcs11: Config.BreakerCooldown is -1s: "},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := tc.c.withDefaults()
			if !errors.Is(err, offload.ErrInvalid) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid and a message that begins %q", err, tc.want)
			}
		})
	}
}
