package offload

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

type deviceError struct{ code int }

func (e deviceError) Error() string { return fmt.Sprintf("device code %#x", e.code) }

func TestOpError(t *testing.T) {
	dev := deviceError{0x30}
	err := Errorf("soft", OpSign, "%w: %w", ErrAuth, dev)
	var oe *OpError
	if !errors.As(err, &oe) || oe.Engine != "soft" || oe.Op != OpSign {
		t.Fatalf("Errorf gave %#v", err)
	}
	if !errors.Is(err, ErrAuth) {
		t.Fatal("sentinel lost")
	}
	var de deviceError
	if !errors.As(err, &de) || de.code != 0x30 {
		t.Fatal("device error lost")
	}
	if got, want := err.Error(), "soft sign: authentication failed: device code 0x30"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if errors.Unwrap(err) != oe.Err {
		t.Fatal("Unwrap is not the cause")
	}
}

func TestWrap(t *testing.T) {
	if Wrap("x", OpHash, nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
	e := Wrap("x", OpHash, context.Canceled)
	if !errors.Is(e, context.Canceled) {
		t.Fatal("Wrap lost the cause")
	}
	if Wrap("y", OpSign, e) != e {
		t.Fatal("Wrap wrapped an *OpError again")
	}
	outer := fmt.Errorf("outer: %w", e)
	if Wrap("y", OpSign, outer) != outer {
		t.Fatal("Wrap wrapped an error holding an *OpError")
	}
}

func TestSentinels(t *testing.T) {
	if !errors.Is(ErrUnsupported, errors.ErrUnsupported) {
		t.Fatal("ErrUnsupported does not wrap errors.ErrUnsupported")
	}
	wrapped := Errorf("qat", OpCipher, "mode %v: %w", ModeCTR, ErrUnsupported)
	if !errors.Is(wrapped, errors.ErrUnsupported) || !errors.Is(wrapped, ErrUnsupported) {
		t.Fatal("wrapped ErrUnsupported lost")
	}
	all := []error{ErrNotReady, ErrBusy, ErrClosed, ErrNotFound, ErrAuth, ErrInvalid, ErrUnsupported, ErrForeignKey}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, i != j)
			}
		}
	}
}

func TestNames(t *testing.T) {
	for a := Algorithm(1); a < numAlgorithms; a++ {
		if s := a.String(); s == "" || s[0] == 'a' && s != "algorithm" && len(s) > 9 && s[:9] == "algorithm" {
			t.Errorf("Algorithm(%d) has no name", a)
		}
	}
	if Algorithm(200).String() != "algorithm(200)" || Op(9).String() != "op(9)" ||
		KeyType(99).String() != "keytype(99)" || CipherMode(7).String() != "mode(7)" {
		t.Error("unknown values are not named by number")
	}
	ops := map[Algorithm]Op{ECDSAP256: OpSign, MLDSA87: OpSign, RSAOAEP: OpDecrypt, RSAPKCS1v15Decrypt: OpDecrypt,
		SHA224: OpHash, SHA512: OpHash, AESGCM: OpCipher, AESCTR: OpCipher, Random: OpRandom}
	for a, op := range ops {
		if a.Op() != op {
			t.Errorf("%v.Op() = %v, want %v", a, a.Op(), op)
		}
	}
	info := Info{Algorithms: []Algorithm{ECDSAP256, Random}}
	if !info.Supports(Random) || info.Supports(RSAPSS) {
		t.Error("Info.Supports wrong")
	}
}

// TestOpErrorText: an OpError says the engine and the operation once; the
// cause's own "engine: " and "offload: " prefixes are not repeated.
func TestOpErrorText(t *testing.T) {
	for _, tt := range []struct {
		engine string
		cause  error
		want   string
	}{
		{"pkcs11", fmt.Errorf("pkcs11: %w", ErrClosed), "pkcs11 sign: engine closed"},
		{"soft", fmt.Errorf("soft: %w: digest is 5 bytes", ErrInvalid), "soft sign: invalid input: digest is 5 bytes"},
		{"soft", ErrBusy, "soft sign: engine busy"},
		{"soft", errors.New("pkcs11: C_Sign: CKR_GENERAL_ERROR (0x5)"), "soft sign: pkcs11: C_Sign: CKR_GENERAL_ERROR (0x5)"},
		{"qat", errors.New("device lost"), "qat sign: device lost"},
		{"", errors.New("offload: x"), " sign: x"},
	} {
		if got := Wrap(tt.engine, OpSign, tt.cause).Error(); got != tt.want {
			t.Errorf("Wrap(%q, %v) = %q, want %q", tt.engine, tt.cause, got, tt.want)
		}
	}
}
