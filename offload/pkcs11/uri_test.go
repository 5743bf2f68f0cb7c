package pkcs11

import (
	"errors"
	"reflect"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

func uintp(v uint) *uint { return &v }

func TestParseURI(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want *URI // nil: an error wrapping ErrInvalid
	}{
		{"pkcs11:", &URI{}},
		{"pkcs11:token=offcrypt;object=ec256;type=private",
			&URI{Token: "offcrypt", Object: "ec256", Type: TypePrivate}},
		{"PKCS11:id=%01", &URI{ID: []byte{1}}},
		{"pkcs11:id=%01%ff%0A;type=secret-key", &URI{ID: []byte{1, 0xff, 0x0a}, Type: TypeSecretKey}},
		{"pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;serial=0123;model=SoftHSM%20v2",
			&URI{Token: "My Token", Manufacturer: "SoftHSM project", Serial: "0123", Model: "SoftHSM v2"}},
		{"pkcs11:library-manufacturer=OpenSC;library-description=x;library-version=2.6;slot-description=s;slot-manufacturer=m;slot-id=42",
			&URI{LibraryManufacturer: "OpenSC", LibraryDescription: "x", LibraryVersion: "2.6",
				SlotDescription: "s", SlotManufacturer: "m", SlotID: uintp(42)}},
		{"pkcs11:object=a&b=c:@!$'()*+,", &URI{Object: "a&b=c:@!$'()*+,"}},
		{"pkcs11:object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin|x&max-sessions=8",
			&URI{Object: "k", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PinSource: "file:/run/pin|x", MaxSessions: 8}},
		{"pkcs11:?module-name=softhsm2&pin-value=1234", &URI{ModuleName: "softhsm2", PinValue: "1234"}},
		{"pkcs11:object=?", &URI{}},
		{"pkcs11:id=", &URI{}},
		{"pkcs11:type=cert;type=cert", nil},
		{"pkcs11:object=a?pin-value=1&pin-value=2", nil},
		{"pkcs11:colour=blue", nil},
		{"pkcs11:x-vendor=1", nil},
		{"pkcs11:?colour=blue", nil},
		{"pkcs11:token=offcrypt?token=offcrypt", nil},
		{"pkcs11:type=key", nil},
		{"pkcs11:type=", nil},
		{"pkcs11:id=%0", nil},
		{"pkcs11:id=%zz", nil},
		{"pkcs11:id=%", nil},
		{"pkcs11:object=a b", nil},
		{"pkcs11:object=a/b", nil},
		{"pkcs11:object=a\x00b", nil},
		{"pkcs11:object", nil},
		{"pkcs11:=x", nil},
		{"pkcs11:token=a;;object=b", nil},
		{"pkcs11:slot-id=-1", nil},
		{"pkcs11:slot-id=+1", nil},
		{"pkcs11:slot-id=", nil},
		{"pkcs11:slot-id=99999999999999999999999", nil},
		{"pkcs11:?max-sessions=0", nil},
		{"pkcs11:?max-sessions=many", nil},
		{"pkcs11:?pin-value=a&", nil},
		{"pkcs11", nil},
		{"pkcs12:token=x", nil},
		{"", nil},
	} {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseURI(tt.in)
			if tt.want == nil {
				if !errors.Is(err, offload.ErrInvalid) || u != nil {
					t.Fatalf("ParseURI = %+v, %v; want ErrInvalid", u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(u, tt.want) {
				t.Fatalf("ParseURI = %+v, want %+v", u, tt.want)
			}
			back, err := ParseURI(u.String())
			if err != nil || !reflect.DeepEqual(back, u) {
				t.Fatalf("round trip through %q: %+v, %v", u.String(), back, err)
			}
		})
	}
}

func TestURIString(t *testing.T) {
	u := &URI{Token: "my token", Object: "ec256", ID: []byte{1, 0xab}, Type: TypePrivate, SlotID: uintp(3),
		ModulePath: "/usr/lib/p11.so", PinValue: "12&34", MaxSessions: 2}
	const want = "pkcs11:token=my%20token;slot-id=3;object=ec256;id=%01%AB;type=private?module-path=%2Fusr%2Flib%2Fp11.so&pin-value=12%2634&max-sessions=2"
	if got := u.String(); got != want {
		t.Fatalf("String() = %s\nwant        %s", got, want)
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:",
		"pkcs11:token=offcrypt;object=ec256;type=private",
		"pkcs11:id=%01%02;type=secret-key?module-path=/usr/lib/x.so&max-sessions=4",
		"pkcs11:slot-id=7;serial=abc?pin-source=file:/p|q&pin-value=1",
		"pkcs11:object=a&b?module-name=n",
		"pkcs11:id=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, offload.ErrInvalid) || u != nil {
				t.Fatalf("ParseURI(%q) = %v, %v", s, u, err)
			}
			return
		}
		out := u.String()
		back, err := ParseURI(out)
		if err != nil {
			t.Fatalf("ParseURI(%q) (from %q): %v", out, s, err)
		}
		if !reflect.DeepEqual(back, u) {
			t.Fatalf("round trip of %q through %q: %+v != %+v", s, out, back, u)
		}
	})
}
