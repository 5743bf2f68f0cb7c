package wycheproof

import (
	"encoding/json"
	"testing"
)

func TestHex(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`{"v": "00ff10"}`, "\x00\xff\x10", true},
		{`{"v": ""}`, "", true},
		{`{"v": "0"}`, "", false},
		{`{"v": "zz"}`, "", false},
		{`{"v": 12}`, "", false},
	}
	for _, tc := range tests {
		var v struct{ V Hex }
		err := json.Unmarshal([]byte(tc.in), &v)
		if (err == nil) != tc.ok || (tc.ok && string(v.V) != tc.want) {
			t.Errorf("%s: %x, %v", tc.in, []byte(v.V), err)
		}
	}
}
