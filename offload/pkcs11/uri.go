package pkcs11

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/offcrypt/offcrypt/offload"
)

// Object types a URI's type attribute may name.
const (
	TypePrivate   = "private"
	TypePublic    = "public"
	TypeCert      = "cert"
	TypeSecretKey = "secret-key"
	TypeData      = "data"
)

// A URI is a parsed RFC 7512 PKCS #11 URI, such as
// "pkcs11:token=web;object=tls-key;type=private?pin-source=file:/run/pin".
// String fields hold decoded values; an empty field is an absent attribute.
type URI struct {
	// Path attributes: which token and which object.
	Token               string // token=
	Manufacturer        string // manufacturer=
	Serial              string // serial=
	Model               string // model=
	LibraryManufacturer string // library-manufacturer=
	LibraryDescription  string // library-description=
	LibraryVersion      string // library-version=
	SlotDescription     string // slot-description=
	SlotManufacturer    string // slot-manufacturer=
	SlotID              *uint  // slot-id=, decimal
	Object              string // object= (CKA_LABEL)
	ID                  []byte // id= (CKA_ID), percent-encoded bytes; nil when absent
	Type                string // type=: private, public, cert, secret-key or data

	// Query attributes: how to reach the token.
	ModulePath  string // module-path=
	ModuleName  string // module-name=
	PinSource   string // pin-source=
	PinValue    string // pin-value=
	MaxSessions int    // max-sessions=, positive; 0 when absent
}

const uriScheme = "pkcs11:"

func uriErr(format string, args ...any) error {
	return fmt.Errorf("pkcs11: uri: %s: %w", fmt.Sprintf(format, args...), offload.ErrInvalid)
}

// ParseURI parses an RFC 7512 PKCS #11 URI. Unknown attributes (vendor "x-"
// attributes included), attributes given twice, bad percent-encoding and
// characters the RFC does not allow are errors wrapping offload.ErrInvalid.
func ParseURI(s string) (*URI, error) {
	if len(s) < len(uriScheme) || !strings.EqualFold(s[:len(uriScheme)], uriScheme) {
		return nil, uriErr("missing %q scheme", uriScheme)
	}
	rest := s[len(uriScheme):]
	path, query, hasQuery := strings.Cut(rest, "?")
	u := new(URI)
	seen := make(map[string]bool)
	if path != "" {
		for attr := range strings.SplitSeq(path, ";") {
			if err := u.set(attr, false, seen); err != nil {
				return nil, err
			}
		}
	}
	if hasQuery && query != "" {
		for attr := range strings.SplitSeq(query, "&") {
			if err := u.set(attr, true, seen); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

func (u *URI) set(attr string, query bool, seen map[string]bool) error {
	name, raw, ok := strings.Cut(attr, "=")
	if !ok || name == "" {
		return uriErr("attribute %q is not name=value", attr)
	}
	if seen[name] {
		return uriErr("attribute %q given twice", name)
	}
	seen[name] = true
	val, err := unescape(raw, query)
	if err != nil {
		return uriErr("attribute %q: %v", name, err)
	}
	if query {
		switch name {
		case "module-path":
			u.ModulePath = val
		case "module-name":
			u.ModuleName = val
		case "pin-source":
			u.PinSource = val
		case "pin-value":
			u.PinValue = val
		case "max-sessions":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || strings.HasPrefix(val, "+") {
				return uriErr("max-sessions %q is not a positive integer", val)
			}
			u.MaxSessions = n
		default:
			return uriErr("unknown query attribute %q", name)
		}
		return nil
	}
	switch name {
	case "token":
		u.Token = val
	case "manufacturer":
		u.Manufacturer = val
	case "serial":
		u.Serial = val
	case "model":
		u.Model = val
	case "library-manufacturer":
		u.LibraryManufacturer = val
	case "library-description":
		u.LibraryDescription = val
	case "library-version":
		u.LibraryVersion = val
	case "slot-description":
		u.SlotDescription = val
	case "slot-manufacturer":
		u.SlotManufacturer = val
	case "slot-id":
		n, err := strconv.ParseUint(val, 10, strconv.IntSize)
		if err != nil || strings.HasPrefix(val, "+") {
			return uriErr("slot-id %q is not a decimal number", val)
		}
		id := uint(n)
		u.SlotID = &id
	case "object":
		u.Object = val
	case "id":
		if val != "" {
			u.ID = []byte(val)
		}
	case "type":
		switch val {
		case TypePrivate, TypePublic, TypeCert, TypeSecretKey, TypeData:
			u.Type = val
		default:
			return uriErr("unknown object type %q", val)
		}
	default:
		return uriErr("unknown path attribute %q", name)
	}
	return nil
}

// unescape decodes a percent-encoded attribute value, allowing only the
// characters RFC 7512 allows unencoded in a path (or query) value.
func unescape(s string, query bool) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Errorf("bad percent-encoding at offset %d", i)
			}
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		if !allowed(c, query) {
			return "", fmt.Errorf("character %q must be percent-encoded", c)
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return s, nil
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// allowed reports whether c may appear unencoded in a value: RFC 7512's
// pk11-pchar (path) or pk11-qchar (query), less the separators.
func allowed(c byte, query bool) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case ':', '[', ']', '@', '!', '$', '\'', '(', ')', '*', '+', ',', '=':
		return true
	case '&':
		return !query
	case '/', '?', '|', ';':
		return query
	}
	return false
}

// String returns the URI in RFC 7512 form. Values are percent-encoded except
// for unreserved characters, so ParseURI(u.String()) gives back u.
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString(uriScheme)
	sep, next := "", ";"
	add := func(name, val string) {
		if val == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteByte('=')
		escape(&b, val)
		sep = next
	}
	add("token", u.Token)
	add("manufacturer", u.Manufacturer)
	add("serial", u.Serial)
	add("model", u.Model)
	add("library-manufacturer", u.LibraryManufacturer)
	add("library-description", u.LibraryDescription)
	add("library-version", u.LibraryVersion)
	add("slot-description", u.SlotDescription)
	add("slot-manufacturer", u.SlotManufacturer)
	if u.SlotID != nil {
		add("slot-id", strconv.FormatUint(uint64(*u.SlotID), 10))
	}
	add("object", u.Object)
	add("id", string(u.ID))
	add("type", u.Type)

	sep, next = "?", "&"
	add("module-path", u.ModulePath)
	add("module-name", u.ModuleName)
	add("pin-source", u.PinSource)
	add("pin-value", u.PinValue)
	if u.MaxSessions > 0 {
		add("max-sessions", strconv.Itoa(u.MaxSessions))
	}
	return b.String()
}

func escape(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}
