package conformance_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/conformance"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// restricted is the software engine claiming only some algorithms, and
// refusing the rest with ErrUnsupported before they reach it: it exercises
// the suite's checks of algorithms an engine does not claim.
type restricted struct {
	*soft.Engine
	algs []offload.Algorithm
}

func (r *restricted) Info() offload.Info {
	i := r.Engine.Info()
	i.Name = "restricted"
	i.Algorithms = r.algs
	return i
}

func refuse[T any](a offload.Algorithm, err error) *offload.Future[T] {
	if err == nil {
		err = fmt.Errorf("restricted: %w: %v", offload.ErrUnsupported, a)
	}
	return offload.Failed[T](err)
}

func (r *restricted) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	if p, err := req.Check(); err != nil || !slices.Contains(r.algs, p.Alg) {
		return refuse[[]byte](p.Alg, err)
	}
	return r.Engine.Sign(ctx, req)
}

func (r *restricted) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	if p, err := req.Check(); err != nil || !slices.Contains(r.algs, p.Alg) {
		return refuse[[]byte](p.Alg, err)
	}
	return r.Engine.Decrypt(ctx, req)
}

func (r *restricted) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	if a, err := req.Check(); err != nil || !slices.Contains(r.algs, a) {
		return refuse[offload.HashResult](a, err)
	}
	return r.Engine.Hash(ctx, req)
}

func (r *restricted) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	if a, err := req.Check(); err != nil || !slices.Contains(r.algs, a) {
		return refuse[[]byte](a, err)
	}
	return r.Engine.Cipher(ctx, req)
}

func (r *restricted) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	if !slices.Contains(r.algs, offload.Random) {
		return refuse[[]byte](offload.Random, nil)
	}
	return r.Engine.Random(ctx, req)
}

var _ offload.Engine = (*restricted)(nil)

// TestRestricted runs the suite against an engine that claims a few
// algorithms, with keys only from Generate, so the paths for unclaimed
// algorithms and for Setups that cannot import are taken.
func TestRestricted(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Setup {
		eng, err := soft.New(soft.Options{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		r := &restricted{Engine: eng, algs: []offload.Algorithm{offload.Ed25519, offload.SHA384, offload.AESCTR}}
		return conformance.Setup{Engine: r, Generate: eng.GenerateKey}
	})
}
