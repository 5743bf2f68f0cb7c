package cipher

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"sync"

	"github.com/offcrypt/offcrypt/offload"
)

// CBC is AES-CBC with an engine-held key, encrypting or decrypting. It
// carries the IV from one request, and one call, to the next: the next IV is
// the last ciphertext block. NewCBCEncrypter and NewCBCDecrypter return a
// *CBC, which is a cipher.BlockMode and also has CryptBlocksContext.
type CBC struct {
	mu      sync.Mutex
	key     *offload.Key
	eng     offload.Engine
	chunk   int
	decrypt bool
	iv      [aes.BlockSize]byte
}

var _ cipher.BlockMode = (*CBC)(nil)

// NewCBCEncrypter returns AES-CBC encryption with key, an AES key held by an
// engine, starting from iv, which must be 16 bytes. Errors wrap offload.ErrInvalid (a bad key or IV) or
// offload.ErrUnsupported (an engine that cannot do AES-CBC).
func NewCBCEncrypter(key *offload.Key, iv []byte) (*CBC, error) {
	return newCBC(key, iv, false)
}

// NewCBCDecrypter is NewCBCEncrypter for decryption.
func NewCBCDecrypter(key *offload.Key, iv []byte) (*CBC, error) {
	return newCBC(key, iv, true)
}

func newCBC(key *offload.Key, iv []byte, decrypt bool) (*CBC, error) {
	eng, max, err := engineFor(key, offload.AESCBC)
	if err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("cipher: %w: CBC IV of %d bytes, want %d", offload.ErrInvalid, len(iv), aes.BlockSize)
	}
	chunk, err := wholeBlocks(eng, max)
	if err != nil {
		return nil, err
	}
	c := &CBC{key: key, eng: eng, chunk: chunk, decrypt: decrypt}
	copy(c.iv[:], iv)
	return c, nil
}

// BlockSize returns the AES block size, 16.
func (c *CBC) BlockSize() int { return aes.BlockSize }

// SetIV sets the IV for the next call, as crypto/cipher's CBC modes allow.
// It panics if iv is not 16 bytes.
func (c *CBC) SetIV(iv []byte) {
	if len(iv) != aes.BlockSize {
		panic("cipher: incorrect length IV")
	}
	c.mu.Lock()
	copy(c.iv[:], iv)
	c.mu.Unlock()
}

// CryptBlocks encrypts or decrypts src into dst, in as many requests as the
// engine's cap needs. It implements cipher.BlockMode and waits for the
// engine. It panics with crypto/cipher's message when src is not whole
// blocks, dst is shorter than src, or the two overlap other than exactly,
// and with an error wrapping the cause when the engine fails.
// CryptBlocksContext returns errors instead.
func (c *CBC) CryptBlocks(dst, src []byte) {
	if len(src)%aes.BlockSize != 0 {
		panic("crypto/cipher: input not full blocks")
	}
	if len(dst) < len(src) {
		panic("crypto/cipher: output smaller than input")
	}
	if inexactOverlap(dst[:len(src)], src) {
		panic("crypto/cipher: invalid buffer overlap")
	}
	if err := c.crypt(context.Background(), dst, src); err != nil {
		panic(fmt.Errorf("cipher: CryptBlocks cannot report a device failure (use CryptBlocksContext): %w", err))
	}
}

// CryptBlocksContext is CryptBlocks with a context, which bounds the
// requests, and with every problem returned as an error (bad input wraps
// offload.ErrInvalid). When it fails, dst is unspecified and the IV is as
// it was before the call.
func (c *CBC) CryptBlocksContext(ctx context.Context, dst, src []byte) error {
	switch {
	case ctx == nil:
		return fmt.Errorf("cipher: %w", offload.CheckContext(ctx))
	case len(src)%aes.BlockSize != 0:
		return fmt.Errorf("cipher: %w: CBC input of %d bytes is not whole blocks", offload.ErrInvalid, len(src))
	case len(dst) < len(src):
		return fmt.Errorf("cipher: %w: output of %d bytes for %d bytes of input", offload.ErrInvalid, len(dst), len(src))
	case inexactOverlap(dst[:len(src)], src):
		return fmt.Errorf("cipher: %w: output and input overlap", offload.ErrInvalid)
	}
	return c.crypt(ctx, dst, src)
}

func (c *CBC) crypt(ctx context.Context, dst, src []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	iv := c.iv
	for off := 0; off < len(src); {
		n := min(len(src)-off, c.chunk)
		in := src[off : off+n]
		var next [aes.BlockSize]byte
		if c.decrypt {
			copy(next[:], in[n-aes.BlockSize:]) // before dst, which may be src, is written
		}
		out, err := wait(ctx, c.eng, &offload.CipherRequest{Key: c.key, Mode: offload.ModeCBC, Decrypt: c.decrypt, IV: iv[:], Input: in})
		if err != nil {
			return fmt.Errorf("cipher: %w", err)
		}
		if len(out) != n {
			return fmt.Errorf("cipher: engine %q: %w: CBC output of %d bytes for %d", c.eng.Info().Name, offload.ErrInvalid, len(out), n)
		}
		if !c.decrypt {
			copy(next[:], out[n-aes.BlockSize:])
		}
		copy(dst[off:], out)
		clear(out)
		iv = next
		off += n
	}
	c.iv = iv
	return nil
}
