package soft

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"sync"

	"github.com/cloudflare/circl/sign/ed448"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/offload"
)

// signOp is one signature: everything Work needs, taken out of the request
// at submission so that nothing of the caller's is read later unless
// Detach has copied it.
type signOp struct {
	alg     offload.Algorithm
	handle  any
	in      []byte // digest or message
	message bool   // in is the whole message, to hash with hash first
	hash    crypto.Hash

	pss      rsa.PSSOptions  // the resolved salt length and the hash
	ed       ed25519.Options // Ed25519: the hash (Ed25519ph) and the context
	edCtx    string          // Ed448 context
	edPh     bool            // Ed448ph
	mlCtx    []byte          // ML-DSA context
	mlRandom bool            // ML-DSA hedged

	// The method values handed to the executor, bound once per pooled signOp
	// so that a signature costs no closure allocations.
	workFn   func(struct{}) ([]byte, error)
	detachFn func()
}

// signOps recycles signOps. One goes back to the pool when its work has run;
// the executor never calls a job's Work or Detach again after that. One
// whose work never runs (cancelled while queued) is left to the collector.
var signOps sync.Pool

func getSignOp() *signOp {
	if s, ok := signOps.Get().(*signOp); ok {
		return s
	}
	s := new(signOp)
	s.workFn, s.detachFn = s.work, s.detach
	return s
}

func (s *signOp) free() {
	*s = signOp{workFn: s.workFn, detachFn: s.detachFn}
	signOps.Put(s)
}

// Sign signs req.Digest or req.Message with req.Key, in the encoding the
// standard library produces: ASN.1 DER for ECDSA, raw for everything else.
// See offload.SignRequest for the options each key type takes; Ed448 also
// takes circl's ed448.SignerOptions (Context, and Scheme ED448Ph for
// Ed448ph), and ML-DSA takes *offload.MLDSAOptions.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	s, err := e.prepareSign(req)
	if err != nil {
		return exec.Fail[[]byte](e.x, offload.OpSign, err)
	}
	return exec.Submit(e.x, ctx, exec.Op[struct{}, []byte]{
		Kind:   offload.OpSign,
		Call:   req.Call,
		Key:    req.Key,
		Work:   s.workFn,
		Detach: s.detachFn,
	})
}

func (e *Engine) prepareSign(req *offload.SignRequest) (*signOp, error) {
	p, err := req.Check()
	if err != nil {
		return nil, err
	}
	if err := e.admit(req.Key, p.Alg); err != nil {
		return nil, err
	}
	in := req.Input()
	if len(in) > e.maxIn {
		return nil, invalid("%d bytes to sign exceed the %d-byte request cap", len(in), e.maxIn)
	}
	s := getSignOp()
	s.alg, s.handle, s.in, s.message, s.hash = p.Alg, req.Key.Handle(), in, req.Message != nil, p.Hash
	if err := s.prepare(req, &p); err != nil {
		s.free()
		return nil, err
	}
	return s, nil
}

// prepare takes what the signature needs out of the checked parameters.
func (s *signOp) prepare(req *offload.SignRequest, p *offload.SignParams) error {
	alg := s.alg
	var ok bool
	switch alg {
	case offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521:
		_, ok = s.handle.(ecdsaKey)
	case offload.RSAPKCS1v15:
		_, ok = s.handle.(rsaKey)
	case offload.RSAPSS:
		_, ok = s.handle.(rsaKey)
		// The salt length is resolved. crypto/rsa reads a SaltLength of 0
		// as rsa.PSSSaltLengthAuto, the longest salt the modulus takes;
		// Check resolves to 0 only when that longest salt is 0, so the two
		// agree.
		s.pss = rsa.PSSOptions{SaltLength: p.SaltLength, Hash: p.Hash}
	case offload.Ed25519, offload.Ed25519ph, offload.Ed25519ctx:
		_, ok = s.handle.(edKey)
		s.ed.Hash = s.hash
		if len(p.Context) > 0 {
			s.ed.Context = string(p.Context)
		}
	case offload.Ed448:
		_, ok = s.handle.(ed448Key)
		var o *ed448.SignerOptions
		switch v := req.Opts.(type) {
		case ed448.SignerOptions:
			o = &v
		case *ed448.SignerOptions:
			o = v
		}
		if s.hash != 0 {
			return invalid("Ed448 takes no hash; got %v", s.hash)
		}
		if o != nil {
			switch o.Scheme {
			case ed448.ED448:
			case ed448.ED448Ph:
				s.edPh = true
			default:
				return invalid("Ed448 scheme %d", o.Scheme)
			}
			s.edCtx = o.Context
		}
		if len(s.edCtx) > ed448.ContextMaxSize {
			return invalid("Ed448 context of %d bytes", len(s.edCtx))
		}
	case offload.MLDSA44, offload.MLDSA65, offload.MLDSA87:
		_, ok = s.handle.(mldsaKey)
		s.mlCtx, s.mlRandom = p.Context, !p.Deterministic
	default:
		return invalid("algorithm %v cannot sign", alg)
	}
	if !ok {
		return invalid("an %v key with a handle of type %T", req.Key.Type(), s.handle)
	}
	return nil
}

// detach copies what Work reads from the caller's memory.
func (s *signOp) detach() {
	s.in = bytes.Clone(s.in)
	s.mlCtx = bytes.Clone(s.mlCtx)
}

func (s *signOp) work(struct{}) ([]byte, error) {
	defer s.free()
	switch s.alg {
	case offload.ECDSAP256, offload.ECDSAP384, offload.ECDSAP521:
		sig, err := ecdsa.SignASN1(rand.Reader, s.handle.(ecdsaKey).priv, s.digest())
		return sig, wrapErr(err)
	case offload.RSAPKCS1v15:
		sig, err := rsa.SignPKCS1v15(nil, s.handle.(rsaKey).priv, s.hash, s.digest())
		return sig, rsaErr(err)
	case offload.RSAPSS:
		sig, err := rsa.SignPSS(rand.Reader, s.handle.(rsaKey).priv, s.hash, s.digest(), &s.pss)
		return sig, rsaErr(err)
	case offload.Ed25519, offload.Ed25519ph, offload.Ed25519ctx:
		sig, err := s.handle.(edKey).priv.Sign(nil, s.digest(), &s.ed)
		return sig, wrapErr(err)
	case offload.Ed448:
		k := s.handle.(ed448Key).priv
		if s.edPh {
			return ed448.SignPh(k, s.in, s.edCtx), nil
		}
		return ed448.Sign(k, s.in, s.edCtx), nil
	case offload.MLDSA44, offload.MLDSA65, offload.MLDSA87:
		k := s.handle.(mldsaKey)
		sig := make([]byte, k.sigSize)
		if err := k.signTo(s.in, s.mlCtx, s.mlRandom, sig); err != nil {
			return nil, wrapErr(err)
		}
		return sig, nil
	}
	return nil, invalid("algorithm %v cannot sign", s.alg)
}

// digest returns what the signature primitive takes: s.in, hashed first
// when it is a whole message and the scheme signs a hash.
func (s *signOp) digest() []byte {
	if !s.message || s.hash == 0 {
		return s.in
	}
	switch s.hash {
	case crypto.SHA256:
		d := sha256.Sum256(s.in)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(s.in)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(s.in)
		return d[:]
	}
	h := s.hash.New()
	h.Write(s.in)
	return h.Sum(nil)
}

// rsaErr wraps an error of crypto/rsa, marking input the key cannot sign as
// invalid.
func rsaErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, rsa.ErrMessageTooLong) {
		return invalid("%w", err)
	}
	return wrapErr(err)
}

// decryptOp is one RSA decryption.
type decryptOp struct {
	priv  *rsa.PrivateKey
	ct    []byte
	oaep  rsa.OAEPOptions
	v15   rsa.PKCS1v15DecryptOptions
	isOAE bool
}

// Decrypt decrypts req.Ciphertext with an RSA key: PKCS #1 v1.5 for nil or
// *rsa.PKCS1v15DecryptOptions (SessionKeyLen honoured as
// rsa.PrivateKey.Decrypt does), OAEP for *rsa.OAEPOptions. A decryption
// failure wraps rsa.ErrDecryption. The plaintext is zeroed if it is never
// delivered.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	d, err := e.prepareDecrypt(req)
	if err != nil {
		return exec.Fail[[]byte](e.x, offload.OpDecrypt, err)
	}
	return exec.Submit(e.x, ctx, exec.Op[struct{}, []byte]{
		Kind:    offload.OpDecrypt,
		Call:    req.Call,
		Key:     req.Key,
		Work:    d.work,
		Detach:  d.detach,
		Release: zero,
	})
}

func (e *Engine) prepareDecrypt(req *offload.DecryptRequest) (*decryptOp, error) {
	p, err := req.Check()
	if err != nil {
		return nil, err
	}
	if err := e.admit(req.Key, p.Alg); err != nil {
		return nil, err
	}
	if len(req.Ciphertext) > e.maxIn {
		return nil, invalid("ciphertext of %d bytes exceeds the %d-byte request cap", len(req.Ciphertext), e.maxIn)
	}
	h, err := handle[rsaKey](req.Key)
	if err != nil {
		return nil, err
	}
	d := &decryptOp{priv: h.priv, ct: req.Ciphertext}
	if p.Alg == offload.RSAOAEP {
		d.oaep, d.isOAE = rsa.OAEPOptions{Hash: p.Hash, MGFHash: p.MGFHash, Label: p.Label}, true
	} else {
		d.v15.SessionKeyLen = p.SessionKeyLen
	}
	return d, nil
}

func (d *decryptOp) detach() {
	d.ct = bytes.Clone(d.ct)
	d.oaep.Label = bytes.Clone(d.oaep.Label)
}

func (d *decryptOp) work(struct{}) ([]byte, error) {
	var opts crypto.DecrypterOpts = &d.v15
	if d.isOAE {
		opts = &d.oaep
	}
	pt, err := d.priv.Decrypt(rand.Reader, d.ct, opts)
	return pt, wrapErr(err)
}

// zero clears a secret result that was never delivered.
func zero(b []byte) { clear(b) }
