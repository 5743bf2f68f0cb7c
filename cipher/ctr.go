package cipher

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"

	"github.com/offcrypt/offcrypt/offload"
)

// CTR is AES-CTR with an engine-held key. The counter block is a 128-bit
// big-endian integer incremented once per block, as in crypto/cipher. A
// call that ends inside a block keeps the rest of that block's keystream
// (the engine is asked to encrypt zeros for it), so the next call continues
// exactly where this one stopped. NewCTR returns a *CTR, which is a
// cipher.Stream and also has XORKeyStreamContext.
type CTR struct {
	mu    sync.Mutex
	key   *offload.Key
	eng   offload.Engine
	chunk int
	ctr   [aes.BlockSize]byte // the counter block of the next whole block
	ks    [aes.BlockSize]byte // keystream of the current block; its last ksLen bytes are unused
	ksLen int
}

var _ cipher.Stream = (*CTR)(nil)

// NewCTR returns AES-CTR with key, an AES key held by an engine, starting
// from the counter block iv, which must be 16 bytes. Errors wrap offload.ErrInvalid (a bad key or IV) or
// offload.ErrUnsupported (an engine that cannot do AES-CTR).
func NewCTR(key *offload.Key, iv []byte) (*CTR, error) {
	eng, max, err := engineFor(key, offload.AESCTR)
	if err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("cipher: %w: CTR IV of %d bytes, want %d", offload.ErrInvalid, len(iv), aes.BlockSize)
	}
	chunk, err := wholeBlocks(eng, max)
	if err != nil {
		return nil, err
	}
	c := &CTR{key: key, eng: eng, chunk: chunk}
	copy(c.ctr[:], iv)
	return c, nil
}

// XORKeyStream XORs src with the keystream into dst, in as many requests as
// the engine's cap needs. It implements cipher.Stream and waits for the
// engine. It panics with crypto/cipher's message when dst is shorter than
// src or the two overlap other than exactly, and with an error wrapping the
// cause when the engine fails. XORKeyStreamContext returns errors instead.
func (c *CTR) XORKeyStream(dst, src []byte) {
	if len(dst) < len(src) {
		panic("crypto/cipher: output smaller than input")
	}
	if inexactOverlap(dst[:len(src)], src) {
		panic("crypto/cipher: invalid buffer overlap")
	}
	if err := c.xor(context.Background(), dst, src); err != nil {
		panic(fmt.Errorf("cipher: XORKeyStream cannot report a device failure (use XORKeyStreamContext): %w", err))
	}
}

// XORKeyStreamContext is XORKeyStream with a context, which bounds the
// requests, and with every problem returned as an error (bad input wraps
// offload.ErrInvalid). When it fails, dst is unspecified and the stream's
// position is as it was before the call.
func (c *CTR) XORKeyStreamContext(ctx context.Context, dst, src []byte) error {
	switch {
	case ctx == nil:
		return fmt.Errorf("cipher: %w", offload.CheckContext(ctx))
	case len(dst) < len(src):
		return fmt.Errorf("cipher: %w: output of %d bytes for %d bytes of input", offload.ErrInvalid, len(dst), len(src))
	case inexactOverlap(dst[:len(src)], src):
		return fmt.Errorf("cipher: %w: output and input overlap", offload.ErrInvalid)
	}
	return c.xor(ctx, dst, src)
}

func (c *CTR) xor(ctx context.Context, dst, src []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	savedCtr, savedKs, savedLen := c.ctr, c.ks, c.ksLen
	if err := c.xorLocked(ctx, dst, src); err != nil {
		c.ctr, c.ks, c.ksLen = savedCtr, savedKs, savedLen
		return err
	}
	return nil
}

func (c *CTR) xorLocked(ctx context.Context, dst, src []byte) error {
	// First the keystream left over from a block the last call ended in.
	if c.ksLen > 0 && len(src) > 0 {
		n := min(len(src), c.ksLen)
		subtle.XORBytes(dst[:n], src[:n], c.ks[aes.BlockSize-c.ksLen:][:n])
		c.ksLen -= n
		dst, src = dst[n:], src[n:]
	}
	for len(src) > 0 {
		n := min(len(src), c.chunk)
		in := src[:n]
		pad := 0
		if r := n % aes.BlockSize; r != 0 {
			// The last piece ends inside a block: pad it with zeros, whose
			// encryption is the keystream the next call starts with.
			pad = aes.BlockSize - r
			in = make([]byte, n+pad)
			copy(in, src[:n])
		}
		out, err := wait(ctx, c.eng, &offload.CipherRequest{Key: c.key, Mode: offload.ModeCTR, IV: c.ctr[:], Input: in})
		if err != nil {
			return fmt.Errorf("cipher: %w", err)
		}
		if len(out) != n+pad {
			return fmt.Errorf("cipher: engine %q: %w: CTR output of %d bytes for %d", c.eng.Info().Name, offload.ErrInvalid, len(out), n+pad)
		}
		copy(dst, out[:n])
		if pad > 0 {
			copy(c.ks[aes.BlockSize-pad:], out[n:])
			c.ksLen = pad
		}
		clear(out)
		addCounter(&c.ctr, uint64((n+pad)/aes.BlockSize))
		dst, src = dst[n:], src[n:]
	}
	return nil
}

// addCounter adds n to a 128-bit big-endian counter block, wrapping.
func addCounter(ctr *[aes.BlockSize]byte, n uint64) {
	hi, lo := binary.BigEndian.Uint64(ctr[:8]), binary.BigEndian.Uint64(ctr[8:])
	lo, carry := bits.Add64(lo, n, 0)
	hi += carry
	binary.BigEndian.PutUint64(ctr[:8], hi)
	binary.BigEndian.PutUint64(ctr[8:], lo)
}
