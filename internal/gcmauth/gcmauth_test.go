package gcmauth

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"testing"
)

func TestError(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 32))
	g, _ := cipher.NewGCM(b)
	_, stdErr := g.Open(nil, make([]byte, 12), make([]byte, 20), nil)
	if stdErr == nil || stdErr != ErrOpen {
		t.Fatalf("crypto/cipher's Open error %v is not ErrOpen %v", stdErr, ErrOpen)
	}
	cause := errors.New("device said no")
	tests := []struct {
		err  *Error
		msg  string
		want []error
	}{
		{&Error{Engine: "qat"}, "qat: GCM: message authentication failed", []error{ErrOpen}},
		{&Error{Engine: "pkcs11", Cause: cause}, "pkcs11: GCM: message authentication failed: device said no", []error{ErrOpen, cause}},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.msg {
			t.Errorf("Error() = %q, want %q", got, tc.msg)
		}
		for _, w := range tc.want {
			if !errors.Is(tc.err, w) {
				t.Errorf("%v does not match %v", tc.err, w)
			}
		}
	}
}
