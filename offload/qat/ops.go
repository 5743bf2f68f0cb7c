package qat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-224 and SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // SHA-384 and SHA-512 for crypto.Hash.New
	"errors"
	"fmt"
	"math/big"

	"github.com/offcrypt/offcrypt/internal/ecdsaenc"
	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/internal/rsapad"
	"github.com/offcrypt/offcrypt/offload"
)

// maxNonces is how many nonces one ECDSA signature tries before a
// multiplication failure is reported.
const maxNonces = 4

// gcmTagSize is the AES-GCM tag the device makes and checks.
const gcmTagSize = 16

func failed[T any](x *exec.Executor[struct{}], op offload.Op, err error) *offload.Future[T] {
	return exec.Fail[T](x, op, err)
}

// Sign signs with a raw device primitive, everything around it done here:
// ECDSA signs the digest truncated to the curve's order with a hedged RFC
// 6979 nonce, trying the next nonce when the device's multiplication fails,
// and returns ASN.1; RSA exponentiates the EMSA-PKCS1-v1_5 or EMSA-PSS
// block (the salt length offload resolved) with the CRT key, and the
// signature is checked with the public exponent before it is returned: a
// wrong one fails with ErrFaultCheck. A Message request is hashed here.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	const op = offload.OpSign
	if req == nil {
		return failed[[]byte](e.asym, op, fmt.Errorf("qat: %w: nil request", offload.ErrInvalid))
	}
	p, err := req.Check()
	if err = e.admit(req.Key, p.Alg, err); err != nil {
		return failed[[]byte](e.asym, op, err)
	}
	if in := req.Input(); len(in) > e.cfg.MaxInline {
		return failed[[]byte](e.asym, op, fmt.Errorf("qat: %w: %d bytes to sign, more than MaxInline %d", offload.ErrInvalid, len(in), e.cfg.MaxInline))
	}
	digest := bytes.Clone(req.Digest)
	if req.Message != nil && p.Hash != 0 {
		h := p.Hash.New()
		h.Write(req.Message)
		digest = h.Sum(nil)
	} else if req.Message != nil {
		digest = bytes.Clone(req.Message)
	}
	o := exec.Op[struct{}, []byte]{Kind: op, Call: req.Call, Key: req.Key}
	switch p.Alg {
	case offload.ECDSAP256, offload.ECDSAP384:
		k, err := handle[*ecdsaHandle](e, req.Key)
		if err != nil {
			return failed[[]byte](e.asym, op, err)
		}
		nonces, err := ecdsaenc.NewNonces(k.curve, p.Hash, k.d, digest, rand.Reader)
		if err != nil {
			return failed[[]byte](e.asym, op, err)
		}
		o.Start = e.ecdsaStart(ctx, k, ecdsaenc.Truncate(k.curve, digest), nonces)
	default:
		k, err := handle[*rsaHandle](e, req.Key)
		if err != nil {
			return failed[[]byte](e.asym, op, err)
		}
		var em []byte
		if p.Alg == offload.RSAPSS {
			em, err = rsapad.EncodePSS(rand.Reader, req.Key.Bits(), p.Hash, digest, p.SaltLength)
		} else {
			em, err = rsapad.EncodePKCS1v15((req.Key.Bits()+7)/8, p.Hash, digest)
		}
		if err != nil {
			return failed[[]byte](e.asym, op, fmt.Errorf("qat: %w: %w", offload.ErrInvalid, err))
		}
		o.Start = e.rsaStart(ctx, k, em, func(sig []byte) ([]byte, error) { return sig, nil })
	}
	return exec.Submit(e.asym, ctx, o)
}

// rsaStart returns the Start of a raw RSA private-key operation on in,
// whose result is checked with the public exponent (it must take the
// result back to in) and then handed to finish.
func (e *Engine) rsaStart(ctx context.Context, k *rsaHandle, in []byte, finish func([]byte) ([]byte, error)) func(bool, func([]byte, error)) error {
	want := new(big.Int).SetBytes(in)
	return starter(e, ctx, e.insts, func(i *inst, done func([]byte, error)) error {
		return i.dev.rsaDecrypt(k.crt, in, func(out []byte, err error) {
			if err == nil {
				err = publicCheck(k.pub, out, want)
			}
			if err != nil {
				clear(out)
				done(nil, err)
				return
			}
			done(finish(out))
		})
	})
}

// publicCheck verifies that out^e mod n is want.
func publicCheck(pub *rsa.PublicKey, out []byte, want *big.Int) error {
	x := new(big.Int).SetBytes(out)
	if x.Exp(x, big.NewInt(int64(pub.E)), pub.N).Cmp(want) != 0 {
		return ErrFaultCheck
	}
	return nil
}

// ecdsaStart returns the Start of an ECDSA signature: a device that reports
// a failed multiplication is asked again with the next nonce, from a new
// goroutine (the callback runs on the poller, which must not wait for a
// ring).
func (e *Engine) ecdsaStart(ctx context.Context, k *ecdsaHandle, z []byte, nonces *ecdsaenc.Nonces) func(bool, func([]byte, error)) error {
	tries := 0
	var start func(bool, func([]byte, error)) error
	submit := func(i *inst, done func([]byte, error)) error {
		tries++
		return i.dev.ecdsaSign(k.curve, k.d, nonces.Next(), z, func(rs []byte, err error) {
			if errors.Is(err, ErrMultiplyFailed) && tries < maxNonces && ctx.Err() == nil {
				go e.again(start, done)
				return
			}
			if err != nil {
				done(nil, err)
				return
			}
			done(ecdsaenc.DER(k.curve, rs))
		})
	}
	start = starter(e, ctx, e.insts, submit)
	return start
}

// again submits a request once more, backing off while the rings are full,
// up to Config.Retries times, and delivers the failure if it cannot.
func (e *Engine) again(start func(bool, func([]byte, error)) error, done func([]byte, error)) {
	var err error
	for range e.cfg.Retries + 1 {
		if err = start(false, done); !errors.Is(err, exec.ErrRetry) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, exec.ErrRetry) {
			err = fmt.Errorf("%w: the device was still full after %d retries", offload.ErrBusy, e.cfg.Retries)
		}
		done(nil, err)
	}
}

// Decrypt decrypts with the raw RSA private-key operation and removes the
// padding here, in constant time (OAEP, PKCS #1 v1.5, or crypto/rsa's
// session-key behaviour), after the public-exponent check. Every padding
// failure is rsa.ErrDecryption.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	const op = offload.OpDecrypt
	if req == nil {
		return failed[[]byte](e.asym, op, fmt.Errorf("qat: %w: nil request", offload.ErrInvalid))
	}
	p, err := req.Check()
	if err = e.admit(req.Key, p.Alg, err); err != nil {
		return failed[[]byte](e.asym, op, err)
	}
	k, err := handle[*rsaHandle](e, req.Key)
	if err != nil {
		return failed[[]byte](e.asym, op, err)
	}
	var unpad func(em []byte) ([]byte, error)
	switch {
	case p.Alg == offload.RSAOAEP:
		label := bytes.Clone(p.Label)
		unpad = func(em []byte) ([]byte, error) { return rsapad.DecodeOAEP(em, p.Hash, p.MGFHash, label) }
	case p.SessionKeyLen > 0:
		key := make([]byte, p.SessionKeyLen)
		if _, err := rand.Read(key); err != nil {
			return failed[[]byte](e.asym, op, err)
		}
		unpad = func(em []byte) ([]byte, error) { return key, rsapad.DecodeSessionKey(em, key) }
	default:
		unpad = rsapad.DecodePKCS1v15
	}
	finish := func(em []byte) ([]byte, error) {
		pt, err := unpad(em)
		if err == nil {
			pt = bytes.Clone(pt)
		}
		clear(em)
		return pt, err
	}
	o := exec.Op[struct{}, []byte]{Kind: op, Call: req.Call, Key: req.Key,
		Start:   e.rsaStart(ctx, k, bytes.Clone(req.Ciphertext), finish),
		Release: func(pt []byte) { clear(pt) },
	}
	return exec.Submit(e.asym, ctx, o)
}

// Cipher seals or opens AES-GCM on a session of the key's for the instance,
// direction and AAD length. The device takes 96-bit nonces and at most
// MaxAAD bytes of AAD: other nonce sizes and longer AAD fail with an error
// wrapping offload.ErrUnsupported. With Config.Batch above 1 the request
// joins its instance's batch (see Config.Batch). A ciphertext that does not
// authenticate, or is shorter than the tag, fails with an error wrapping
// crypto/cipher's own (internal/gcmauth). CBC and CTR are not claimed.
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	const op = offload.OpCipher
	if req == nil {
		return failed[[]byte](e.sym, op, fmt.Errorf("qat: %w: nil request", offload.ErrInvalid))
	}
	alg, err := req.Check()
	if err = e.admit(req.Key, alg, err); err != nil {
		return failed[[]byte](e.sym, op, err)
	}
	k, err := handle[*aesHandle](e, req.Key)
	switch {
	case err != nil:
	case len(req.AAD) > MaxAAD:
		err = fmt.Errorf("qat: %w: %d bytes of GCM AAD; the device takes at most %d", offload.ErrUnsupported, len(req.AAD), MaxAAD)
	case len(req.Input) > e.cfg.MaxInline || len(req.AAD) > e.cfg.MaxInline:
		err = fmt.Errorf("qat: %w: %d bytes of input, more than MaxInline %d", offload.ErrInvalid, len(req.Input), e.cfg.MaxInline)
	case !req.Decrypt && len(req.Input) > e.cfg.MaxInline-gcmTagSize:
		// The device takes a GCM message whole, in one request: what is
		// sealed must be openable, tag and all, within MaxInline.
		err = fmt.Errorf("qat: %w: a GCM plaintext of %d bytes seals to more than MaxInline %d; the device takes no GCM message in parts", offload.ErrInvalid, len(req.Input), e.cfg.MaxInline)
	case len(req.IV) != 12:
		err = fmt.Errorf("qat: %w: a %d-byte GCM nonce; the device takes 12", offload.ErrUnsupported, len(req.IV))
	case req.Decrypt && len(req.Input) < gcmTagSize:
		// Too short to hold the tag: it cannot authenticate, as
		// crypto/cipher says, and the device is not asked.
		err = &gcmauth.Error{Engine: "qat"}
	}
	if err != nil {
		return failed[[]byte](e.sym, op, err)
	}
	kind := gcmSeal
	if req.Decrypt {
		kind = gcmOpen
	}
	sop := symOp{iv: bytes.Clone(req.IV), aad: bytes.Clone(req.AAD), in: bytes.Clone(req.Input)}
	start := starter(e, ctx, e.insts, func(i *inst, done func([]byte, error)) error {
		s, err := k.gcmSession(i, kind, len(sop.aad))
		if err != nil {
			return err
		}
		return submitOne(i, s, sop, done)
	})
	if e.cfg.Batch > 1 {
		start = func(_ bool, done func([]byte, error)) error {
			i := e.insts[int(e.next.Add(1))%len(e.insts)]
			s, err := k.gcmSession(i, kind, len(sop.aad))
			if err != nil {
				return err
			}
			i.batch.add(batchItem{req: symReq{s: s, op: sop, done: done}, ctx: ctx})
			return nil
		}
	}
	return exec.Submit(e.sym, ctx, exec.Op[struct{}, []byte]{Kind: op, Call: req.Call, Key: req.Key,
		Start: start, Release: func(out []byte) { clear(out) }})
}

// Hash fails with offload.ErrUnsupported: the device keeps a hash's state
// in a session, so SHA-2 is served by HashSession, never by stateless
// requests. A closed engine and an ended context fail as they would for any
// request.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	err := fmt.Errorf("qat: %w: stateless hashing; the device hashes in sessions (HashSession)", offload.ErrUnsupported)
	switch {
	case e.closed():
		err = offload.ErrClosed
	case ctx == nil:
		err = offload.CheckContext(ctx)
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	}
	return failed[offload.HashResult](e.sym, offload.OpHash, err)
}

// Random fails with offload.ErrUnsupported: qatlib has no random number
// generator.
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	return failed[[]byte](e.sym, offload.OpRandom, fmt.Errorf("qat: %w: random numbers", offload.ErrUnsupported))
}
