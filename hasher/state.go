package hasher

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"fmt"

	"github.com/offcrypt/offcrypt/offload"
)

// The standard library marshals a SHA-2 digest as
//
//	magic (4 bytes) | chaining values h[8] | block buffer x | length in bytes (8)
//
// with the chaining values and the length big-endian, the buffered partial
// block in x[:len%blockSize] and zeros after it. An engine returns the state
// after whole blocks, so its buffer part is empty; the partial block lives in
// the Hash. The functions below join the two into the standard library's form
// and split that form back, without hashing anything.

// layout describes one hash's marshaled state.
type layout struct {
	magic string
	words int // bytes of chaining values: 32 for SHA-224/256, 64 for SHA-384/512
	block int // block size
}

func (l layout) size() int  { return len(l.magic) + l.words + l.block + 8 }
func (l layout) bufAt() int { return len(l.magic) + l.words }
func (l layout) lenAt() int { return l.bufAt() + l.block }
func (l layout) length(s []byte) uint64 {
	return binary.BigEndian.Uint64(s[l.lenAt():])
}

// layouts, by hash. SHA-224 and SHA-256 share the SHA-256 layout with their
// own magic, SHA-384 and SHA-512 the SHA-512 one.
var layouts = map[crypto.Hash]layout{
	crypto.SHA224: {magic: "sha\x02", words: 32, block: sha256.BlockSize},
	crypto.SHA256: {magic: "sha\x03", words: 32, block: sha256.BlockSize},
	crypto.SHA384: {magic: "sha\x04", words: 64, block: sha512.BlockSize},
	crypto.SHA512: {magic: "sha\x07", words: 64, block: sha512.BlockSize},
}

// freshState returns the marshaled state of a hash that has seen nothing.
// The initial chaining values are constants; taking them from the standard
// library's own marshaling is the surest way to get them right.
func freshState(h crypto.Hash) []byte {
	var m encoding.BinaryMarshaler
	switch h {
	case crypto.SHA224:
		m = sha256.New224().(encoding.BinaryMarshaler)
	case crypto.SHA256:
		m = sha256.New().(encoding.BinaryMarshaler)
	case crypto.SHA384:
		m = sha512.New384().(encoding.BinaryMarshaler)
	case crypto.SHA512:
		m = sha512.New().(encoding.BinaryMarshaler)
	default:
		return nil
	}
	s, err := m.MarshalBinary()
	if err != nil {
		return nil
	}
	return s
}

// check validates a state in l's form. When blocksOnly is set, the state
// must be one an engine returns after whole blocks: an empty buffer.
func (l layout) check(s []byte, blocksOnly bool) error {
	if len(s) != l.size() || string(s[:len(l.magic)]) != l.magic {
		return fmt.Errorf("%w: hash state of %d bytes is not a %q state of %d bytes", offload.ErrInvalid, len(s), l.magic, l.size())
	}
	if blocksOnly && l.length(s)%uint64(l.block) != 0 {
		return fmt.Errorf("%w: engine returned a hash state that is not at a block boundary", offload.ErrInvalid)
	}
	return nil
}

// join appends to b the standard library's marshaled state for an engine
// state (nil for fresh) followed by the partial block buf.
func (l layout) join(b []byte, h crypto.Hash, state, buf []byte) ([]byte, error) {
	if state == nil {
		state = freshState(h)
	}
	if err := l.check(state, true); err != nil {
		return nil, err
	}
	at := len(b)
	b = append(b, state...)
	out := b[at:]
	clear(out[l.bufAt():l.lenAt()])
	copy(out[l.bufAt():], buf)
	binary.BigEndian.PutUint64(out[l.lenAt():], l.length(state)+uint64(len(buf)))
	return b, nil
}

// split takes a marshaled state apart into an engine state at a block
// boundary and the partial block that follows it.
func (l layout) split(s []byte) (state, buf []byte, err error) {
	if err := l.check(s, false); err != nil {
		return nil, nil, err
	}
	n := l.length(s)
	nx := int(n % uint64(l.block))
	buf = append(make([]byte, 0, l.block), s[l.bufAt():l.bufAt()+nx]...)
	state = append([]byte(nil), s...)
	clear(state[l.bufAt():l.lenAt()])
	binary.BigEndian.PutUint64(state[l.lenAt():], n-uint64(nx))
	return state, buf, nil
}
