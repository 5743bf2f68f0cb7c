package signer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/fault"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// fakeEngine is a small engine over the standard library, built on the same
// executor the software engine uses, so the adapter's tests do not
// depend on offload/soft. gate, when not nil, holds every queued (not
// inline) operation until it is closed.
type fakeEngine struct {
	pool *exec.Executor[struct{}]
	gate chan struct{}
}

var _ offload.Engine = (*fakeEngine)(nil)

func newFake(inj inject.Options) *fakeEngine {
	return &fakeEngine{pool: exec.New(exec.Config[struct{}]{
		Name: "fake", Workers: 2, MaxInFlight: 8, Inject: fault.New(inj),
	})}
}

func (e *fakeEngine) ImportKey(priv any) (*offload.Key, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		t := map[elliptic.Curve]offload.KeyType{
			elliptic.P256(): offload.KeyECDSAP256, elliptic.P384(): offload.KeyECDSAP384, elliptic.P521(): offload.KeyECDSAP521,
		}[k.Curve]
		return offload.NewKey(e, t, k.Curve.Params().BitSize, k.Public(), k), nil
	case *rsa.PrivateKey:
		return offload.NewKey(e, offload.KeyRSA, k.N.BitLen(), k.Public(), k), nil
	case ed25519.PrivateKey:
		return offload.NewKey(e, offload.KeyEd25519, 256, k.Public(), k), nil
	case []byte:
		return offload.NewKey(e, offload.KeyAES, 8*len(k), nil, k), nil
	}
	return nil, fmt.Errorf("fake: %w: key %T", offload.ErrUnsupported, priv)
}

func (e *fakeEngine) Info() offload.Info {
	return offload.Info{Name: "fake", MaxInFlight: 8, MaxInline: 1 << 16, MinRSABits: 1024, MaxRSABits: 4096,
		Algorithms: []offload.Algorithm{offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521,
			offload.RSAPKCS1v15, offload.RSAPSS, offload.RSAOAEP, offload.RSAPKCS1v15Decrypt,
			offload.Ed25519, offload.Ed25519ph, offload.Ed25519ctx}}
}

func (e *fakeEngine) wait() {
	if e.gate != nil {
		<-e.gate
	}
}

func (e *fakeEngine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	p, err := req.Check()
	if err == nil && !e.Info().Supports(p.Alg) {
		err = fmt.Errorf("%w: %v", offload.ErrUnsupported, p.Alg)
	}
	if err == nil && req.Key.Engine() != e {
		err = offload.ErrForeignKey
	}
	if err != nil {
		return exec.Fail[[]byte](e.pool, offload.OpSign, err)
	}
	priv := req.Key.Handle().(crypto.Signer)
	r := *req
	if r.Opts == nil {
		r.Opts = crypto.Hash(0)
	}
	queued := false
	return exec.Submit(e.pool, ctx, exec.Op[struct{}, []byte]{
		Kind: offload.OpSign, Call: req.Call, Key: req.Key,
		Detach: func() {
			r.Digest, r.Message = slices.Clone(r.Digest), slices.Clone(r.Message)
			queued = true
		},
		Work: func(struct{}) ([]byte, error) {
			if queued {
				e.wait()
			}
			if r.Message != nil {
				return crypto.SignMessage(priv, rand.Reader, r.Message, r.Opts)
			}
			return priv.Sign(rand.Reader, r.Digest, r.Opts)
		},
	})
}

func (e *fakeEngine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	if _, err := req.Check(); err != nil {
		return exec.Fail[[]byte](e.pool, offload.OpDecrypt, err)
	}
	priv := req.Key.Handle().(*rsa.PrivateKey)
	r := *req
	queued := false
	return exec.Submit(e.pool, ctx, exec.Op[struct{}, []byte]{
		Kind: offload.OpDecrypt, Call: req.Call, Key: req.Key,
		Detach: func() { r.Ciphertext = slices.Clone(r.Ciphertext); queued = true },
		Work: func(struct{}) ([]byte, error) {
			if queued {
				e.wait()
			}
			return priv.Decrypt(rand.Reader, r.Ciphertext, r.Opts)
		},
	})
}

func (e *fakeEngine) Hash(context.Context, *offload.HashRequest) *offload.Future[offload.HashResult] {
	return exec.Fail[offload.HashResult](e.pool, offload.OpHash, offload.ErrUnsupported)
}

func (e *fakeEngine) Cipher(context.Context, *offload.CipherRequest) *offload.Future[[]byte] {
	return exec.Fail[[]byte](e.pool, offload.OpCipher, offload.ErrUnsupported)
}

func (e *fakeEngine) Random(context.Context, *offload.RandomRequest) *offload.Future[[]byte] {
	return exec.Fail[[]byte](e.pool, offload.OpRandom, offload.ErrUnsupported)
}

func (e *fakeEngine) Stats() offload.Snapshot { return e.pool.Stats() }

func (e *fakeEngine) Close() error { e.pool.Close(); return nil }
