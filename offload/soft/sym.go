package soft

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	_ "crypto/sha256" // SHA-224 and SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // SHA-384 and SHA-512 for crypto.Hash.New
	"encoding"
	"sync"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/offload"
)

// maxHashState bounds a marshaled SHA-2 state: the standard library's
// SHA-512 state is 204 bytes.
const maxHashState = 512

// hashOp is one step of a hash computation.
type hashOp struct {
	hash  crypto.Hash
	state []byte
	data  []byte
	final bool
}

// Hash advances or finishes a hash computation whose whole state travels
// with the request: req.State is nil to start afresh, or the standard
// library's marshaled state (encoding.BinaryMarshaler on sha256.New(),
// sha256.New224(), sha512.New384() or sha512.New()). The result is the next
// state in the same form or, when req.Final is set, the digest. Non-final
// data must be whole blocks; data longer than Info.MaxInline, and a state
// that does not unmarshal, fail with offload.ErrInvalid.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	h, err := e.prepareHash(req)
	if err != nil {
		return exec.Fail[offload.HashResult](e.x, offload.OpHash, err)
	}
	return exec.Submit(e.x, ctx, exec.Op[struct{}, offload.HashResult]{
		Kind:   offload.OpHash,
		Call:   req.Call,
		Work:   h.work,
		Detach: h.detach,
	})
}

func (e *Engine) prepareHash(req *offload.HashRequest) (*hashOp, error) {
	alg, err := req.Check()
	if err != nil {
		return nil, err
	}
	if err := e.admit(nil, alg); err != nil {
		return nil, err
	}
	if len(req.Data) > e.maxIn {
		return nil, invalid("hash data of %d bytes exceeds the %d-byte request cap", len(req.Data), e.maxIn)
	}
	// The state is not payload: its size is fixed by the hash (at most a
	// few hundred bytes), and a state of any other shape fails to unmarshal.
	if len(req.State) > maxHashState {
		return nil, invalid("hash state of %d bytes", len(req.State))
	}
	bs := 64 // SHA-224, SHA-256
	if alg == offload.SHA384 || alg == offload.SHA512 {
		bs = 128
	}
	if !req.Final && len(req.Data)%bs != 0 {
		return nil, invalid("non-final hash data of %d bytes is not whole %d-byte blocks", len(req.Data), bs)
	}
	return &hashOp{hash: req.Hash, state: req.State, data: req.Data, final: req.Final}, nil
}

func (h *hashOp) detach() {
	h.state = bytes.Clone(h.state)
	h.data = bytes.Clone(h.data)
}

func (h *hashOp) work(struct{}) (offload.HashResult, error) {
	d := h.hash.New()
	if h.state != nil {
		u, ok := d.(encoding.BinaryUnmarshaler)
		if !ok {
			return offload.HashResult{}, invalid("%v state cannot be restored", h.hash)
		}
		if err := u.UnmarshalBinary(h.state); err != nil {
			return offload.HashResult{}, invalid("%v state: %w", h.hash, err)
		}
	}
	d.Write(h.data)
	if h.final {
		return offload.HashResult{Sum: d.Sum(nil)}, nil
	}
	m, ok := d.(encoding.BinaryMarshaler)
	if !ok {
		return offload.HashResult{}, invalid("%v state cannot be saved", h.hash)
	}
	st, err := m.MarshalBinary()
	if err != nil {
		return offload.HashResult{}, wrapErr(err)
	}
	return offload.HashResult{State: st}, nil
}

// AES-GCM's tag size.
const gcmTagSize = 16

// cipherOp is one symmetric operation.
type cipherOp struct {
	key     aesKey
	mode    offload.CipherMode
	decrypt bool
	iv      []byte
	aad     []byte
	in      []byte
	out     []byte // the caller's output buffer; used only on its goroutine

	// Method values bound once per pooled cipherOp, as for signOp.
	workFn   func(struct{}) ([]byte, error)
	detachFn func()
}

// cipherOps recycles cipherOps the way signOps recycles signOps: one goes
// back when its work has run, and never before.
var cipherOps sync.Pool

func getCipherOp() *cipherOp {
	if c, ok := cipherOps.Get().(*cipherOp); ok {
		return c
	}
	c := new(cipherOp)
	c.workFn, c.detachFn = c.work, c.detach
	return c
}

func (c *cipherOp) free() {
	*c = cipherOp{workFn: c.workFn, detachFn: c.detachFn}
	cipherOps.Put(c)
}

// Cipher encrypts or decrypts req.Input with an AES key.
//
// GCM: IV is the nonce (12 bytes as standard; other non-empty sizes are
// accepted), the tag is 16 bytes and ends the ciphertext. An authentication
// failure, a ciphertext shorter than the tag included, wraps the very error
// crypto/cipher's Open returns. CBC: a 16-byte
// IV and whole blocks, no padding. CTR: IV is the 16-byte initial counter
// block. CBC and CTR input longer than Info.MaxInline fails with
// offload.ErrInvalid (callers with more split it); GCM has no cap of the
// engine's own, only crypto/cipher's (Info.MaxGCM), nor do its nonce and
// additional data. A decrypted result is zeroed if it is never
// delivered.
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	c, err := e.prepareCipher(req)
	if err != nil {
		return exec.Fail[[]byte](e.x, offload.OpCipher, err)
	}
	o := exec.Op[struct{}, []byte]{
		Kind:   offload.OpCipher,
		Call:   req.Call,
		Key:    req.Key,
		Work:   c.workFn,
		Detach: c.detachFn,
	}
	if req.Decrypt {
		o.Release = zero
	}
	return exec.Submit(e.x, ctx, o)
}

func (e *Engine) prepareCipher(req *offload.CipherRequest) (*cipherOp, error) {
	alg, err := req.Check()
	if err != nil {
		return nil, err
	}
	if err := e.admit(req.Key, alg); err != nil {
		return nil, err
	}
	k, err := handle[aesKey](req.Key)
	if err != nil {
		return nil, err
	}
	switch req.Mode {
	case offload.ModeGCM:
		if len(req.IV) == 0 {
			return nil, invalid("empty GCM nonce")
		}
		if len(req.Input) > gcmauth.MaxInput || (!req.Decrypt && len(req.Input) > gcmauth.MaxInput-gcmTagSize) {
			return nil, invalid("GCM input of %d bytes exceeds crypto/cipher's %d-byte limit", len(req.Input), gcmauth.MaxInput)
		}
	case offload.ModeCBC, offload.ModeCTR:
		if len(req.Input) > e.maxIn {
			return nil, invalid("%v input of %d bytes exceeds the %d-byte request cap", req.Mode, len(req.Input), e.maxIn)
		}
		if len(req.IV) != aes.BlockSize {
			return nil, invalid("%v IV of %d bytes, want %d", req.Mode, len(req.IV), aes.BlockSize)
		}
		if len(req.AAD) != 0 {
			return nil, invalid("%v takes no additional data", req.Mode)
		}
		if req.Mode == offload.ModeCBC && len(req.Input)%aes.BlockSize != 0 {
			return nil, invalid("CBC input of %d bytes is not whole blocks", len(req.Input))
		}
	}
	c := getCipherOp()
	c.key, c.mode, c.decrypt, c.iv, c.aad, c.in, c.out = k, req.Mode, req.Decrypt, req.IV, req.AAD, req.Input, req.Out
	return c, nil
}

func (c *cipherOp) detach() {
	c.iv = bytes.Clone(c.iv)
	c.aad = bytes.Clone(c.aad)
	c.in = bytes.Clone(c.in)
	// A queued request may resolve (cancellation, Close) before its work
	// runs: it must never write into the caller's memory.
	c.out = nil
}

// dst returns the caller's buffer resized to n when it can hold n bytes, or
// a new one.
func (c *cipherOp) dst(n int) []byte {
	if cap(c.out) >= n {
		return c.out[:n]
	}
	return make([]byte, n)
}

func (c *cipherOp) work(struct{}) ([]byte, error) {
	defer c.free()
	switch c.mode {
	case offload.ModeGCM:
		aead := c.key.gcm
		if len(c.iv) != aead.NonceSize() {
			var err error
			if aead, err = cipher.NewGCMWithNonceSize(c.key.block, len(c.iv)); err != nil {
				return nil, invalid("GCM: %w", err)
			}
		}
		if c.decrypt {
			// A ciphertext shorter than the tag is crypto/cipher's to
			// refuse, as an authentication failure.
			pt, err := aead.Open(c.dst(max(len(c.in)-gcmTagSize, 0))[:0], c.iv, c.in, c.aad)
			if err != nil {
				return nil, wrapErr(err)
			}
			return pt, nil
		}
		return aead.Seal(c.dst(len(c.in) + gcmTagSize)[:0], c.iv, c.in, c.aad), nil
	case offload.ModeCBC:
		out := c.dst(len(c.in))
		if c.decrypt {
			cipher.NewCBCDecrypter(c.key.block, c.iv).CryptBlocks(out, c.in)
		} else {
			cipher.NewCBCEncrypter(c.key.block, c.iv).CryptBlocks(out, c.in)
		}
		return out, nil
	case offload.ModeCTR:
		out := c.dst(len(c.in))
		cipher.NewCTR(c.key.block, c.iv).XORKeyStream(out, c.in)
		return out, nil
	}
	return nil, invalid("cipher mode %v", c.mode)
}

// Random returns req.N bytes from crypto/rand; N must be 0 to
// Info.MaxInline, and 0 is answered at once with no bytes (see
// offload.RandomRequest). The bytes are zeroed if they are never delivered.
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	if err := e.admit(nil, offload.Random); err != nil {
		return exec.Fail[[]byte](e.x, offload.OpRandom, err)
	}
	empty, err := req.Check(e.maxIn)
	switch {
	case err != nil:
		return exec.Fail[[]byte](e.x, offload.OpRandom, wrapErr(err))
	case empty:
		return offload.Resolved([]byte{}, nil)
	}
	n := req.N
	return exec.Submit(e.x, ctx, exec.Op[struct{}, []byte]{
		Kind: offload.OpRandom,
		Call: req.Call,
		Work: func(struct{}) ([]byte, error) {
			b := make([]byte, n)
			rand.Read(b)
			return b, nil
		},
		Release: zero,
	})
}
