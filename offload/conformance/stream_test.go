package conformance

import (
	"bytes"
	"crypto"
	"testing"

	"github.com/offcrypt/offcrypt/offload/soft"
)

// FuzzHashSplits cuts fuzzed data into hash requests whose sizes, in whole
// blocks, come from the fuzzed splits (a zero byte ends the whole-block
// part), sends them through the software engine with a small request cap,
// and compares the digest with the standard library's.
func FuzzHashSplits(f *testing.F) {
	f.Add([]byte("abc"), []byte{1}, uint8(0))
	f.Add(bytes.Repeat([]byte{7}, 1000), []byte{1, 2, 1, 3, 0}, uint8(1))
	f.Add(bytes.Repeat([]byte{0xa5}, 4096+17), []byte{2, 2, 2, 2, 2, 2, 2, 2, 9}, uint8(3))
	f.Add([]byte{}, []byte{}, uint8(2))
	eng, err := soft.New(soft.Options{Workers: 1, MaxInline: 512})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	hashes := []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}
	f.Fuzz(func(t *testing.T, data, splits []byte, which uint8) {
		h := hashes[int(which)%len(hashes)]
		block := h.New().BlockSize()
		maxBlocks := eng.Info().MaxInline / block
		st := hashStream{h: h, data: data}
		left := len(data) / block
		for _, b := range splits {
			if b == 0 || left == 0 {
				break
			}
			n := min(1+int(b-1)%maxBlocks, left)
			st.sizes = append(st.sizes, n*block)
			left -= n
		}
		// Whatever the splits leave goes in requests as large as the cap
		// allows, so the final request carries less than one block.
		for left > 0 {
			n := min(maxBlocks, left)
			st.sizes = append(st.sizes, n*block)
			left -= n
		}
		sum, err := st.run(eng, func(int, error) bool { return false })
		if err != nil {
			t.Fatalf("%v, %d bytes in requests of %v + %d: %v", h, len(data), st.sizes, len(st.tail()), err)
		}
		if want := hashOf(h, data); !bytes.Equal(sum, want) {
			t.Fatalf("%v, %d bytes in requests of %v + %d: digest %x, want %x", h, len(data), st.sizes, len(st.tail()), sum, want)
		}
	})
}
