package pkcs11

import (
	"errors"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

// TestObjectTypes: every URI type maps to a class and back; unknown ones
// do not.
func TestObjectTypes(t *testing.T) {
	for _, typ := range []string{TypePrivate, TypePublic, TypeCert, TypeSecretKey, TypeData} {
		class, ok := objectClass(typ)
		if !ok || objectType(class) != typ {
			t.Errorf("%s: class %d (%v), back to %q", typ, class, ok, objectType(class))
		}
	}
	if _, ok := objectClass(""); ok {
		t.Error("the empty type has a class")
	}
	if got := objectType(0x80000001); got != "" {
		t.Errorf("a vendor class is type %q", got)
	}
}

// TestKeyOptionsCheck: IDs of 1 to MaxIDLen bytes, or none at all, pass.
func TestKeyOptionsCheck(t *testing.T) {
	for _, tt := range []struct {
		id []byte
		ok bool
	}{
		{nil, true},
		{[]byte{1}, true},
		{make([]byte, MaxIDLen), true},
		{[]byte{}, false},
		{make([]byte, MaxIDLen+1), false},
	} {
		err := (&KeyOptions{ID: tt.id}).check()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, offload.ErrInvalid)) {
			t.Errorf("an id of %d bytes (nil %v): %v", len(tt.id), tt.id == nil, err)
		}
	}
}
