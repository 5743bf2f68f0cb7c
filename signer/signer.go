// Package signer turns a key held by any offload engine into the standard
// library's signing and decryption interfaces.
//
// A *Signer is a crypto.Signer and a crypto.MessageSigner, so it goes
// straight into tls.Certificate.PrivateKey, x509.CreateCertificate and
// anything else that signs through those interfaces. A *Decrypter, made only
// for RSA keys, is in addition a crypto.Decrypter.
//
// # Why two types
//
// crypto/tls refuses, for a TLS 1.2 server, a certificate key that implements
// crypto.Decrypter unless its public key is RSA. A single type that always
// had a Decrypt method would therefore break every ECDSA and Ed25519 server
// certificate, so only the type made for RSA keys has one.
//
// # Blocking, context and asynchronous forms
//
// Sign, SignMessage and Decrypt are the standard, blocking methods; they ask
// the engine to run the work on the caller's goroutine when it can
// (offload.Call.Inline), which avoids handing a short operation to a parked
// worker. SignContext, SignMessageContext and DecryptContext are the same
// with a context that bounds the wait and the operation. SignAsync,
// SignMessageAsync and DecryptAsync return an *offload.Future at once, for
// callers that fan out or collect completions with an offload.Queue.
//
// # Options
//
// Options are passed to the engine exactly as given: a crypto.Hash,
// *rsa.PSSOptions (every salt length mode), *ed25519.Options,
// *offload.MLDSAOptions, *rsa.OAEPOptions (label, hash, MGF hash) or
// *rsa.PKCS1v15DecryptOptions. Nil options mean crypto.Hash(0) for signing
// and PKCS #1 v1.5 for decryption, as in the standard library. The engine
// validates every request (offload.SignRequest.Check); errors from bad
// input wrap offload.ErrInvalid.
//
// # Randomness
//
// The io.Reader that the standard interfaces take is ignored: the key lives
// in the engine, and so does the randomness that signing, padding and
// decryption blinding use. A device cannot be handed the caller's reader,
// and the standard library's own keys ignore it in most modes too.
package signer

import (
	"context"
	"crypto"
	"fmt"
	"io"

	"github.com/offcrypt/offcrypt/offload"
)

// A Signer signs with a key that an engine holds. It is safe for concurrent
// use. Make one with New; the zero value refuses every call.
type Signer struct {
	key       *offload.Key
	eng       offload.Engine
	maxInline int // the engine's per-request cap, read once by New
}

var (
	_ crypto.Signer        = (*Signer)(nil)
	_ crypto.MessageSigner = (*Signer)(nil)
)

// New returns a Signer for key. It fails, with an error wrapping
// offload.ErrInvalid, for a nil key, a key without an engine or a public
// half, and a key that cannot sign (an AES key).
func New(key *offload.Key) (*Signer, error) {
	if key == nil {
		return nil, fmt.Errorf("signer: %w: nil key", offload.ErrInvalid)
	}
	switch key.Type() {
	case offload.KeyECDSAP256, offload.KeyECDSAP384, offload.KeyECDSAP521, offload.KeyRSA,
		offload.KeyEd25519, offload.KeyEd448, offload.KeyMLDSA44, offload.KeyMLDSA65, offload.KeyMLDSA87:
	default:
		return nil, fmt.Errorf("signer: %w: %v keys cannot sign", offload.ErrInvalid, key.Type())
	}
	if err := check(key); err != nil {
		return nil, err
	}
	return newSigner(key), nil
}

func newSigner(key *offload.Key) *Signer {
	eng := key.Engine()
	return &Signer{key: key, eng: eng, maxInline: eng.Info().MaxInline}
}

// check refuses a key that has no engine or no public half.
func check(key *offload.Key) error {
	if key.Engine() == nil {
		return fmt.Errorf("signer: %w: key has no engine", offload.ErrInvalid)
	}
	if key.Public() == nil {
		return fmt.Errorf("signer: %w: an %v key has no public half", offload.ErrInvalid, key.Type())
	}
	return nil
}

var errZero = fmt.Errorf("signer: %w: Signer not made by New", offload.ErrInvalid)

// Key returns the engine's key the Signer signs with.
func (s *Signer) Key() *offload.Key {
	if s == nil {
		return nil
	}
	return s.key
}

// Public returns the public half of the key: *ecdsa.PublicKey,
// *rsa.PublicKey, ed25519.PublicKey, or circl's type for Ed448 and ML-DSA.
func (s *Signer) Public() crypto.PublicKey {
	if s == nil || s.key == nil {
		return nil
	}
	return s.key.Public()
}

// Sign signs digest, the hash of a message made with opts.HashFunc(), or the
// message itself when opts.HashFunc() is zero (Ed25519, Ed448, ML-DSA). It
// implements crypto.Signer and blocks until the engine answers. rand is
// ignored: the engine supplies its own randomness. ECDSA signatures are ASN.1
// DER, Ed25519 signatures raw, as the standard library returns them.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.sign(context.Background(), digest, opts, false)
}

// SignContext is Sign with a context, which bounds both the wait and the
// operation: when ctx ends first, it returns ctx's error and the engine drops
// the request or its late result.
func (s *Signer) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.sign(ctx, digest, opts, false)
}

// SignMessage signs msg, which the engine hashes with opts.HashFunc() itself
// (on the device, where the device can); a message larger than the engine's
// per-request cap (Info.MaxInline) is hashed in process instead, when opts
// name a hash, which gives the same signature. It implements crypto.MessageSigner,
// the interface crypto/tls signs through, and blocks until the engine
// answers. rand is ignored: the engine supplies its own randomness.
func (s *Signer) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.sign(context.Background(), msg, opts, true)
}

// SignMessageContext is SignMessage with a context that bounds the wait and
// the operation.
func (s *Signer) SignMessageContext(ctx context.Context, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.sign(ctx, msg, opts, true)
}

// sign is the blocking path. The request is built here and handed to the
// engine by address; it does not outlive the call except inside the engine.
func (s *Signer) sign(ctx context.Context, in []byte, opts crypto.SignerOpts, message bool) ([]byte, error) {
	if s == nil || s.eng == nil {
		return nil, errZero
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	req := offload.SignRequest{Call: offload.Call{Inline: true}, Key: s.key, Opts: opts}
	s.setInput(&req, in, message)
	sig, err := s.eng.Sign(ctx, &req).Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return sig, nil
}

// setInput puts in into the request's Digest or Message. A nil input becomes
// an empty one, so that the engine still sees which of the two it was given
// and checks a digest's length. A message larger than the engine's
// per-request cap is hashed here, when the options name a hash, and sent as
// a digest: the signature is the same, as crypto.SignMessage defines it.
func (s *Signer) setInput(req *offload.SignRequest, in []byte, message bool) {
	if in == nil {
		in = []byte{}
	}
	if !message {
		req.Digest = in
		return
	}
	if s.maxInline > 0 && len(in) > s.maxInline && req.Opts != nil {
		if h := req.Opts.HashFunc(); h != 0 && h.Available() {
			hh := h.New()
			hh.Write(in)
			req.Digest = hh.Sum(nil)
			return
		}
	}
	req.Message = in
}

// SignAsync submits the signature of digest and returns its future at once,
// without running the work on the caller's goroutine. Admission may wait for
// a free slot in the engine, honouring ctx. digest must not be changed until
// the future resolves. ctx bounds the operation: when it ends first the future
// resolves with its error.
func (s *Signer) SignAsync(ctx context.Context, digest []byte, opts crypto.SignerOpts) *offload.Future[[]byte] {
	return s.signAsync(ctx, digest, opts, false)
}

// SignMessageAsync is SignAsync for a whole message, hashed by the engine as
// in SignMessage.
func (s *Signer) SignMessageAsync(ctx context.Context, msg []byte, opts crypto.SignerOpts) *offload.Future[[]byte] {
	return s.signAsync(ctx, msg, opts, true)
}

func (s *Signer) signAsync(ctx context.Context, in []byte, opts crypto.SignerOpts, message bool) *offload.Future[[]byte] {
	if s == nil || s.eng == nil {
		return offload.Failed[[]byte](errZero)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return offload.Failed[[]byte](fmt.Errorf("signer: %w", err))
	}
	req := &offload.SignRequest{Key: s.key, Opts: opts}
	s.setInput(req, in, message)
	return s.eng.Sign(ctx, req)
}

// A Decrypter decrypts, and signs, with an RSA key that an engine holds. It
// is a crypto.Decrypter as well as a crypto.Signer and crypto.MessageSigner
// (through its embedded Signer). It is safe for concurrent use. Make one
// with NewDecrypter; the zero value refuses every call.
type Decrypter struct {
	Signer
}

var (
	_ crypto.Signer        = (*Decrypter)(nil)
	_ crypto.MessageSigner = (*Decrypter)(nil)
	_ crypto.Decrypter     = (*Decrypter)(nil)
)

// NewDecrypter returns a Decrypter for an RSA key. Any other key, and a nil
// key, fails with an error wrapping offload.ErrInvalid: only RSA decrypts,
// and crypto/tls refuses a non-RSA key that claims to (see the package doc).
func NewDecrypter(key *offload.Key) (*Decrypter, error) {
	if key == nil {
		return nil, fmt.Errorf("signer: %w: nil key", offload.ErrInvalid)
	}
	if key.Type() != offload.KeyRSA {
		return nil, fmt.Errorf("signer: %w: %v keys cannot decrypt; only RSA keys make a Decrypter", offload.ErrInvalid, key.Type())
	}
	if err := check(key); err != nil {
		return nil, err
	}
	return &Decrypter{*newSigner(key)}, nil
}

// Decrypt decrypts ciphertext. opts is *rsa.OAEPOptions or
// *rsa.PKCS1v15DecryptOptions; nil means PKCS #1 v1.5. With
// PKCS1v15DecryptOptions.SessionKeyLen set, a ciphertext that does not hold
// a key of that length yields random bytes instead of an error, as
// rsa.PrivateKey.Decrypt does, provided the engine implements that mode. It
// implements crypto.Decrypter and blocks until the engine answers. rand is
// ignored: the engine supplies its own randomness.
func (d *Decrypter) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return d.DecryptContext(context.Background(), ciphertext, opts)
}

// DecryptContext is Decrypt with a context that bounds the wait and the
// operation.
func (d *Decrypter) DecryptContext(ctx context.Context, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	if d == nil || d.eng == nil {
		return nil, errZero
	}
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	req := offload.DecryptRequest{Call: offload.Call{Inline: true}, Key: d.key, Ciphertext: ciphertext, Opts: opts}
	pt, err := d.eng.Decrypt(ctx, &req).Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return pt, nil
}

// DecryptAsync submits the decryption of ciphertext and returns its future
// at once, without running the work on the caller's goroutine. ciphertext
// must not be changed until the future resolves.
func (d *Decrypter) DecryptAsync(ctx context.Context, ciphertext []byte, opts crypto.DecrypterOpts) *offload.Future[[]byte] {
	if d == nil || d.eng == nil {
		return offload.Failed[[]byte](errZero)
	}
	if err := offload.CheckContext(ctx); err != nil {
		return offload.Failed[[]byte](fmt.Errorf("signer: %w", err))
	}
	return d.eng.Decrypt(ctx, &offload.DecryptRequest{Key: d.key, Ciphertext: ciphertext, Opts: opts})
}
