package hasher_test

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"testing"

	"github.com/offcrypt/offcrypt/offload/soft"
)

// FuzzWriteSplits hashes data written in pieces whose sizes come from the
// fuzzer, with each SHA-2 hash, and compares the digests and the marshaled
// states with crypto/sha256 and crypto/sha512.
func FuzzWriteSplits(f *testing.F) {
	f.Add([]byte(""), []byte{})
	f.Add([]byte("abc"), []byte{1, 2})
	f.Add(bytes.Repeat([]byte{0xa5}, 300), []byte{63, 1, 64, 0, 127, 200})
	f.Add(bytes.Repeat([]byte("0123456789"), 200), []byte{0, 0, 255, 255, 7})
	eng, err := soft.New(soft.Options{MaxInline: 256})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		for _, h := range hashes {
			d, want := newHash(t, eng, h), stdNew(h)
			rest, c := data, cuts
			for len(rest) > 0 {
				n := len(rest)
				if len(c) >= 2 {
					n = min(int(binary.BigEndian.Uint16(c)%1024), n)
					c = c[2:]
				} else if len(c) == 1 {
					n = min(int(c[0]), n)
					c = nil
				}
				if _, err := d.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				want.Write(rest[:n])
				rest = rest[n:]
			}
			if got, w := d.Sum(nil), want.Sum(nil); !bytes.Equal(got, w) {
				t.Fatalf("%v: Sum = %x, want %x", h, got, w)
			}
			got, err := d.MarshalBinary()
			w, _ := want.(encoding.BinaryMarshaler).MarshalBinary()
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("%v: MarshalBinary = %x, %v; want %x", h, got, err, w)
			}
		}
	})
}
