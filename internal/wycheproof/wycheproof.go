// Package wycheproof holds what every test that reads the Wycheproof
// vectors' JSON needs: the type of their hex-encoded byte strings and of
// one test case, with the fields of every schema the project uses.
package wycheproof

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Test is one test case. A schema leaves the fields it lacks empty.
type Test struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Msg     Hex      `json:"msg"`
	Sig     Hex      `json:"sig"`
	CT      Hex      `json:"ct"`
	Label   Hex      `json:"label"`
	Ctx     Hex      `json:"ctx"`
	Rnd     Hex      `json:"rnd"`
	Mu      Hex      `json:"mu"`
	Key     Hex      `json:"key"`
	IV      Hex      `json:"iv"`
	AAD     Hex      `json:"aad"`
	Tag     Hex      `json:"tag"`
	Result  string   `json:"result"` // valid, invalid or acceptable
}

// Name names the case in a subtest: "tc" and its number.
func (t Test) Name() string { return fmt.Sprintf("tc%d", t.TcID) }

// Hex is a byte string written in hex in the vectors' JSON.
type Hex []byte

// UnmarshalJSON decodes a JSON string of hex digits.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}
