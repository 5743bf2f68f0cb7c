package offload

import "testing"

// named is an engine handle that names its key.
type named string

func (n named) Name() string { return string(n) }

// TestKeyName: a key's name is its handle's, and empty for a handle that
// has none.
func TestKeyName(t *testing.T) {
	for _, tt := range []struct {
		handle any
		want   string
	}{
		{named("pkcs11:token=web;object=tls;type=private"), "pkcs11:token=web;object=tls;type=private"},
		{named(""), ""},
		{"a string is not a name", ""},
		{nil, ""},
	} {
		if got := NewKey(nil, KeyECDSAP256, 256, nil, tt.handle).Name(); got != tt.want {
			t.Errorf("handle %#v: name %q, want %q", tt.handle, got, tt.want)
		}
	}
}
