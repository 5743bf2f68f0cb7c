package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/offcrypt/offcrypt/internal/ecdsaenc"
	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/rsapad"
	"github.com/offcrypt/offcrypt/offload"
)

const name = "tpm"

// DefaultMaxInFlight is the engine's in-flight limit when
// Config.MaxInFlight is 0.
const DefaultMaxInFlight = 32

// closeGrace is how long Close lets the TPM finish the command it is
// working on before it cuts the connection.
const closeGrace = 10 * time.Second

// Engine is an offload.Engine on one TPM. Every command reaches the TPM
// through one command stream (a Device), which the engine's workers take in
// turn: the TPM runs one command at a time, and the requests admitted
// (Info().MaxInFlight) wait for it in the executor's queue. Its methods are
// safe for concurrent use.
type Engine struct {
	cfg  Config
	dev  *Device
	mu   sync.Mutex // held around every command stream the workers send
	info offload.Info
	x    *exec.Executor[*Device]

	// life bounds every command; Close cancels it when the TPM does not
	// finish in time.
	life   context.Context
	cancel context.CancelFunc

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ offload.Engine        = (*Engine)(nil)
	_ offload.Importer      = (*Engine)(nil)
	_ offload.Generator     = (*Engine)(nil)
	_ offload.HashSessioner = (*Engine)(nil)
)

// Open connects to the TPM cfg names (see Config), finds or creates the
// storage root key, starts the salted session, reads what the TPM can do
// (Info) and starts the engine's workers. It runs on the caller's
// goroutine; every command after it runs on the workers.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	d, err := OpenDevice(ctx, cfg) // checks the options
	if err != nil {
		return nil, err
	}
	caps, err := d.Capabilities(ctx)
	if err != nil {
		return nil, errors.Join(err, d.Close())
	}
	e := &Engine{cfg: d.cfg, dev: d}
	e.life, e.cancel = context.WithCancel(context.Background())
	e.info = offload.Info{
		Name:        name,
		MaxInFlight: cfg.MaxInFlight,
		MaxInline:   min(caps.InputBuffer, maxBuffer),
		Algorithms:  caps.Algorithms,
	}
	if e.info.MaxInline <= 0 {
		e.info.MaxInline = maxBuffer
	}
	if len(caps.RSABits) > 0 {
		e.info.MinRSABits, e.info.MaxRSABits = slices.Min(caps.RSABits), slices.Max(caps.RSABits)
	}
	// One worker per slot, all on the one Device, which the gate hands to
	// one of them at a time: a hash session pinned to a worker between its
	// steps leaves the TPM to the others.
	states := make([]*Device, cfg.MaxInFlight)
	for i := range states {
		states[i] = d
	}
	e.x = exec.New(exec.Config[*Device]{
		Name:        name,
		MaxInFlight: cfg.MaxInFlight,
		States:      states,
		Device:      (*recovery)(e),
		Gate:        (*gate)(e),
	})
	return e, nil
}

// Info describes the engine: what TPM2_GetCapability says the TPM has
// (algorithms, curves, RSA sizes per TPM2_TestParms, TPM_PT_INPUT_BUFFER as
// MaxInline), and the in-flight limit.
func (e *Engine) Info() offload.Info {
	i := e.info
	i.Algorithms = slices.Clone(i.Algorithms)
	return i
}

// Stats returns the engine's counters.
func (e *Engine) Stats() offload.Snapshot { return e.x.Stats() }

// Close fails queued requests with offload.ErrClosed, lets the TPM finish
// the command it is working on (for up to 10 seconds; then the connection
// is cut), flushes every object and the session the engine loaded, and
// closes the connection. Calls after the first return its error.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		done := make(chan struct{})
		go func() { e.x.Close(); close(done) }()
		t := time.NewTimer(closeGrace)
		select {
		case <-done:
		case <-t.C:
			e.cancel()
			<-done
		}
		t.Stop()
		e.cancel()
		e.mu.Lock()
		e.closeErr = e.dev.Close()
		e.mu.Unlock()
	})
	return e.closeErr
}

// gate is the engine as the executor's exec.Gate: the lock that hands the
// Device to one worker at a time.
type gate Engine

// Enter takes the Device.
func (g *gate) Enter(*Device) error {
	g.mu.Lock()
	return nil
}

// Leave gives the Device back.
func (g *gate) Leave(*Device) { g.mu.Unlock() }

// recovery is the engine as the executor's exec.Device.
type recovery Engine

// Prepare does nothing: a Device re-dials a lost connection by itself
// before its next command.
func (r *recovery) Prepare(*Device, bool) error { return nil }

// Recover acts on a command whose connection failed (the TPM restarted, the
// stream broke): it reconnects, which re-creates the storage root key and
// the session (keys are reloaded from their blobs when next used), and
// reports the connection rebuilt so that a repeatable request runs again.
// A reconnection that fails leaves the error wrapping ErrTransport.
func (r *recovery) Recover(d *Device, _ bool, err error) (bool, error) {
	if !errors.Is(err, ErrTransport) && !errors.Is(err, errResponseMAC) {
		return false, err
	}
	e := (*Engine)(r)
	ctx, cancel := context.WithTimeout(e.life, e.cfg.CommandTimeout)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	if d.link != nil {
		return true, err // another worker reconnected already
	}
	if rerr := d.reconnect(ctx); rerr != nil {
		return false, fmt.Errorf("%w; reconnecting: %w", err, rerr)
	}
	return true, err
}

// errClosed is the error of a call on a closed engine.
var errClosed = fmt.Errorf("tpm: %w", offload.ErrClosed)

// failed returns a future failed with err for op.
func failed[T any](op offload.Op, err error) *offload.Future[T] {
	return offload.Failed[T](offload.Wrap(name, op, err))
}

// submit runs work on a worker with the Device. Work must not read the
// caller's memory (copy inputs first) and, when repeat is set, must be
// safe to run twice: after a lost connection it runs again on the new one.
// internal marks housekeeping (key loading), not counted in Stats. release,
// when not nil, gets a result the caller did not wait for.
func submit[T any](e *Engine, ctx context.Context, op offload.Op, call offload.Call, internal, repeat bool, work func(ctx context.Context, d *Device) (T, error), release func(T)) *offload.Future[T] {
	if e.closed.Load() {
		return exec.Fail[T](e.x, op, errClosed)
	}
	// The command runs to its end even when the caller stops waiting (the
	// executor resolves the caller's future at once): cutting a TPM
	// command short breaks the stream for everyone. The caller's values
	// (for auth callbacks) stay.
	wctx := contextWith(e.life, ctx)
	return exec.Submit(e.x, ctx, exec.Op[*Device, T]{
		Kind:     op,
		Call:     call,
		Internal: internal,
		Repeat:   repeat,
		Work:     func(d *Device) (T, error) { return work(wctx, d) },
		Release:  release,
	})
}

// valuesOf is a context with the deadline and cancellation of one context
// and the values of another.
type valuesOf struct {
	context.Context
	values context.Context
}

func (v valuesOf) Value(key any) any { return v.values.Value(key) }

// contextWith returns life, carrying the values of ctx.
func contextWith(life, ctx context.Context) context.Context {
	return valuesOf{Context: life, values: ctx}
}

// wait runs housekeeping on a worker and waits for it.
func wait[T any](e *Engine, ctx context.Context, op offload.Op, repeat bool, work func(ctx context.Context, d *Device) (T, error)) (T, error) {
	if err := offload.CheckContext(ctx); err != nil {
		var zero T
		return zero, offload.Wrap(name, op, err)
	}
	return submit(e, ctx, op, offload.Call{}, true, repeat, work, nil).Wait(ctx)
}

// newKey wraps a device key for offload, with its engine.
func (e *Engine) newKey(k *Key) *offload.Key {
	return offload.NewKey(e, k.typ, k.bits, k.public, k)
}

// keyOp wraps the result of a key operation.
func (e *Engine) keyOp(k *Key, err error) (*offload.Key, error) {
	if err != nil {
		return nil, err
	}
	return e.newKey(k), nil
}

// CreateKey makes a new key in the TPM under the storage root key (see
// KeySpec) and loads it. Save it with KeyFile to use it again later.
func (e *Engine) CreateKey(ctx context.Context, spec KeySpec) (*offload.Key, error) {
	return e.keyOp(wait(e, ctx, offload.OpSign, false, func(ctx context.Context, d *Device) (*Key, error) {
		return d.CreateKey(ctx, spec)
	}))
}

// GenerateKey makes a new key of type t (offload.KeyECDSAP256,
// offload.KeyECDSAP384, or offload.KeyRSA with bits 2048 or 3072) with the
// empty auth value. It is CreateKey for offload.Generator.
func (e *Engine) GenerateKey(ctx context.Context, t offload.KeyType, bits int) (*offload.Key, error) {
	if t != offload.KeyRSA {
		bits = 0 // the curve says it
	}
	return e.CreateKey(ctx, KeySpec{Type: t, Bits: bits})
}

// ImportKey brings a private key held in memory (*ecdsa.PrivateKey on P-256
// or P-384, *rsa.PrivateKey of 2048 or 3072 bits) into the TPM, wrapped to
// its storage root key on the way (see Device.ImportKey). The key then
// lives under the storage root key like one CreateKey made.
func (e *Engine) ImportKey(priv any) (*offload.Key, error) {
	if err := offload.CheckPrivateKey(priv); err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	return e.keyOp(wait(e, context.Background(), offload.OpSign, false, func(ctx context.Context, d *Device) (*Key, error) {
		return d.ImportKey(ctx, priv, nil)
	}))
}

// LoadKeyFile loads a TPM 2.0 key file (PEM "TSS2 PRIVATE KEY", written by
// KeyFile, tpm2-openssl or tpm2-tss-engine) whose parent is this TPM's
// storage root key. auth gives the key's auth value when the file says it
// has one; it is asked once, at the key's first use. After a TPM restart
// the key is loaded again from the file's blobs.
func (e *Engine) LoadKeyFile(ctx context.Context, pemBytes []byte, auth AuthFunc) (*offload.Key, error) {
	pemBytes = bytes.Clone(pemBytes)
	return e.keyOp(wait(e, ctx, offload.OpSign, true, func(ctx context.Context, d *Device) (*Key, error) {
		return d.LoadKeyFile(ctx, pemBytes, auth)
	}))
}

// PersistentKey returns the key at a persistent handle (0x81…), made with
// tpm2_evictcontrol or another tool. auth gives its auth value; nil means
// the empty one.
func (e *Engine) PersistentKey(ctx context.Context, handle uint32, auth AuthFunc) (*offload.Key, error) {
	return e.keyOp(wait(e, ctx, offload.OpSign, true, func(ctx context.Context, d *Device) (*Key, error) {
		return d.PersistentKey(ctx, handle, auth)
	}))
}

// KeyFile returns a key made or imported by this engine as a TPM 2.0 key
// file, loadable by LoadKeyFile and by tpm2-openssl on the same TPM.
func (e *Engine) KeyFile(key *offload.Key) ([]byte, error) {
	k, err := e.keyOf(key)
	if err != nil {
		return nil, err
	}
	return k.KeyFile()
}

// keyOf returns the device key behind key, which must be this engine's.
func (e *Engine) keyOf(key *offload.Key) (*Key, error) {
	if key == nil {
		return nil, fmt.Errorf("tpm: nil key: %w", offload.ErrInvalid)
	}
	if key.Engine() != e {
		return nil, fmt.Errorf("tpm: %w", offload.ErrForeignKey)
	}
	k, ok := key.Handle().(*Key)
	if !ok || k == nil {
		return nil, fmt.Errorf("tpm: key handle %T: %w", key.Handle(), offload.ErrInvalid)
	}
	return k, nil
}

// prepare checks what every keyed request passes before it is queued.
func (e *Engine) prepare(alg offload.Algorithm, err error, key *offload.Key) (*Key, error) {
	if err != nil {
		return nil, err
	}
	k, err := e.keyOf(key)
	if err != nil {
		return nil, err
	}
	if !e.info.Supports(alg) {
		return nil, fmt.Errorf("tpm: %v: %w", alg, offload.ErrUnsupported)
	}
	if e.closed.Load() {
		return nil, errClosed
	}
	return k, nil
}

// raw reports whether k serves as a raw RSA private key: it may decrypt
// and its scheme is null, so TPM2_RSA_Decrypt with the null scheme is
// c^d mod n.
func raw(k *Key) bool {
	if !k.CanDecrypt() {
		return false
	}
	p, err := k.tpub.Parameters.RSADetail()
	return err == nil && p.Scheme.Scheme == tpm2.TPMAlgNull
}

// Sign signs in the TPM. A Message request is hashed here, on the host.
// ECDSA is TPM2_Sign with the request's hash (SHA-1, SHA-256, SHA-384 or
// SHA-512), answered in the DER crypto/ecdsa produces. For an RSA key that
// may serve as the raw private-key operation (sign and decrypt with the
// null scheme: every key CreateKey and ImportKey make), PKCS #1 v1.5 and
// PSS are encoded here, with exactly the salt length asked, and
// TPM2_RSA_Decrypt with the null scheme signs. Other RSA keys use the
// TPM's own RSASSA, and PSS only with a salt as long as the hash: the TPM
// chooses the salt, and a signature that does not verify with the salt
// length asked fails with offload.ErrUnsupported.
func (e *Engine) Sign(ctx context.Context, req *offload.SignRequest) *offload.Future[[]byte] {
	const op = offload.OpSign
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("tpm: nil request: %w", offload.ErrInvalid))
	}
	p, err := req.Check()
	k, err := e.prepare(p.Alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	hf := p.Hash
	var digest []byte
	if req.Message != nil && hf != 0 {
		h := hf.New()
		h.Write(req.Message)
		digest = h.Sum(nil)
	} else {
		digest = bytes.Clone(req.Input())
	}
	var work func(ctx context.Context, d *Device) ([]byte, error)
	switch p.Alg {
	case offload.ECDSAP256, offload.ECDSAP384:
		if _, err := hashAlg(hf); err != nil {
			return failed[[]byte](op, err) // before the TPM: its ECDSA takes the hashes it has
		}
		curve := k.public.(*ecdsa.PublicKey).Curve
		size := (curve.Params().BitSize + 7) / 8
		work = func(ctx context.Context, d *Device) ([]byte, error) {
			r, s, err := d.SignECDSA(ctx, k, hf, digest)
			if err != nil {
				return nil, err
			}
			if r.BitLen() > 8*size || s.BitLen() > 8*size {
				return nil, fmt.Errorf("tpm: Sign answered an ECDSA signature too large for %s", curve.Params().Name)
			}
			rs := make([]byte, 2*size)
			r.FillBytes(rs[:size])
			s.FillBytes(rs[size:])
			return ecdsaenc.DER(curve, rs)
		}
	case offload.RSAPKCS1v15, offload.RSAPSS:
		pss := p.Alg == offload.RSAPSS
		if raw(k) {
			var em []byte
			if pss {
				em, err = rsapad.EncodePSS(rand.Reader, k.bits, hf, digest, p.SaltLength)
			} else {
				em, err = rsapad.EncodePKCS1v15((k.bits+7)/8, hf, digest)
			}
			if err != nil {
				return failed[[]byte](op, err)
			}
			work = func(ctx context.Context, d *Device) ([]byte, error) { return d.RSARaw(ctx, k, em) }
			break
		}
		if hf == 0 {
			return failed[[]byte](op, fmt.Errorf("tpm: PKCS #1 v1.5 without a hash needs a key that may decrypt with the null scheme: %w", offload.ErrUnsupported))
		}
		if _, err := hashAlg(hf); err != nil {
			return failed[[]byte](op, err)
		}
		if pss && p.SaltLength != hf.Size() {
			return failed[[]byte](op, fmt.Errorf("tpm: PSS with a %d-byte salt: the TPM salts with the hash length for this key: %w", p.SaltLength, offload.ErrUnsupported))
		}
		pub, salt := k.public.(*rsa.PublicKey), p.SaltLength
		work = func(ctx context.Context, d *Device) ([]byte, error) {
			sig, err := d.SignRSA(ctx, k, hf, digest, pss)
			if err != nil || !pss {
				return sig, err
			}
			if rsa.VerifyPSS(pub, hf, digest, sig, &rsa.PSSOptions{SaltLength: salt}) != nil {
				return nil, fmt.Errorf("tpm: this TPM's PSS salt is not %d bytes: %w", salt, offload.ErrUnsupported)
			}
			return sig, nil
		}
	default:
		return failed[[]byte](op, fmt.Errorf("tpm: %v: %w", p.Alg, offload.ErrUnsupported))
	}
	return submit(e, ctx, op, req.Call, false, true, work, nil)
}

// Decrypt decrypts with an RSA key in the TPM; ciphertext and plaintext
// cross the bus encrypted. For a key that may serve as the raw private-key
// operation (every key CreateKey and ImportKey make), TPM2_RSA_Decrypt with
// the null scheme removes only the exponent, and the padding is checked
// here in constant time: OAEP with any hash, MGF1 hash and label, PKCS #1
// v1.5 with rsa.PKCS1v15DecryptOptions.SessionKeyLen as crypto/rsa does
// it. Other keys use the TPM's own OAEP (one hash for the label and MGF1;
// a label that is empty or ends in a zero byte) and RSAES; what they cannot
// express fails with offload.ErrUnsupported. Every padding failure wraps
// rsa.ErrDecryption.
func (e *Engine) Decrypt(ctx context.Context, req *offload.DecryptRequest) *offload.Future[[]byte] {
	const op = offload.OpDecrypt
	if req == nil {
		return failed[[]byte](op, fmt.Errorf("tpm: nil request: %w", offload.ErrInvalid))
	}
	p, err := req.Check()
	k, err := e.prepare(p.Alg, err, req.Key)
	if err != nil {
		return failed[[]byte](op, err)
	}
	kLen := (k.bits + 7) / 8
	if len(req.Ciphertext) > kLen {
		return failed[[]byte](op, fmt.Errorf("tpm: ciphertext of %d bytes for an RSA-%d key: %w: %w", len(req.Ciphertext), k.bits, offload.ErrInvalid, rsa.ErrDecryption))
	}
	// A shorter ciphertext is the same number with its leading zeros left
	// out, as crypto/rsa reads it.
	ct := make([]byte, kLen)
	copy(ct[kLen-len(req.Ciphertext):], req.Ciphertext)

	var sessionKey []byte
	if p.SessionKeyLen > 0 {
		sessionKey = make([]byte, p.SessionKeyLen)
		if _, err := rand.Read(sessionKey); err != nil {
			return failed[[]byte](op, err)
		}
	}
	var work func(ctx context.Context, d *Device) ([]byte, error)
	switch {
	case raw(k):
		var unpad func(em []byte) ([]byte, error)
		switch {
		case p.Alg == offload.RSAOAEP:
			hash, mgf, label := p.Hash, p.MGFHash, bytes.Clone(p.Label)
			unpad = func(em []byte) ([]byte, error) { return rsapad.DecodeOAEP(em, hash, mgf, label) }
		case sessionKey != nil:
			unpad = func(em []byte) ([]byte, error) { return sessionKey, rsapad.DecodeSessionKey(em, sessionKey) }
		default:
			unpad = rsapad.DecodePKCS1v15
		}
		work = func(ctx context.Context, d *Device) ([]byte, error) {
			em, err := d.RSARaw(ctx, k, ct)
			if err != nil {
				return nil, err
			}
			if len(em) > kLen {
				clear(em)
				return nil, fmt.Errorf("tpm: RSA_Decrypt answered %d bytes for a %d-byte modulus", len(em), kLen)
			}
			full := make([]byte, kLen)
			copy(full[kLen-len(em):], em)
			clear(em)
			msg, err := unpad(full)
			clear(full)
			return msg, err
		}
	case p.Alg == offload.RSAOAEP:
		if p.MGFHash != p.Hash {
			return failed[[]byte](op, fmt.Errorf("tpm: OAEP with MGF1 %v and label hash %v: the TPM uses one hash: %w", p.MGFHash, p.Hash, offload.ErrUnsupported))
		}
		scheme := DecryptScheme{OAEP: true, Hash: p.Hash, Label: bytes.Clone(p.Label)}
		work = func(ctx context.Context, d *Device) ([]byte, error) { return d.RSADecrypt(ctx, k, ct, scheme) }
	default:
		work = func(ctx context.Context, d *Device) ([]byte, error) {
			msg, err := d.RSADecrypt(ctx, k, ct, DecryptScheme{})
			if sessionKey == nil {
				return msg, err
			}
			switch {
			case err == nil && len(msg) == len(sessionKey):
				copy(sessionKey, msg)
			case err == nil || errors.Is(err, rsa.ErrDecryption):
				// Keep the random key, as crypto/rsa does.
			default:
				return nil, err
			}
			clear(msg)
			return sessionKey, nil
		}
	}
	return submit(e, ctx, op, req.Call, false, true, work, clearBytes)
}

// clearBytes zeroes b.
func clearBytes(b []byte) { clear(b) }

// Random returns req.N bytes from TPM2_GetRandom, asked for in as many
// commands as the TPM's per-command limit takes; they cross the bus
// encrypted. N may not exceed Info().MaxInline.
func (e *Engine) Random(ctx context.Context, req *offload.RandomRequest) *offload.Future[[]byte] {
	const op = offload.OpRandom
	if e.closed.Load() {
		return failed[[]byte](op, errClosed)
	}
	empty, err := req.Check(e.info.MaxInline)
	switch {
	case err != nil:
		return failed[[]byte](op, fmt.Errorf("tpm: %w", err))
	case empty:
		return offload.Resolved([]byte{}, nil)
	}
	n := req.N
	return submit(e, ctx, op, req.Call, false, true, func(ctx context.Context, d *Device) ([]byte, error) {
		b := make([]byte, n)
		if err := d.Random(ctx, b); err != nil {
			clear(b)
			return nil, err
		}
		return b, nil
	}, clearBytes)
}

// Hash fails with offload.ErrUnsupported (after offload.ErrClosed and an
// ended context, as every request): the TPM keeps a hash's state itself,
// so hashing goes through HashSession.
func (e *Engine) Hash(ctx context.Context, req *offload.HashRequest) *offload.Future[offload.HashResult] {
	switch {
	case e.closed.Load():
		return failed[offload.HashResult](offload.OpHash, errClosed)
	case ctx != nil && ctx.Err() != nil:
		return failed[offload.HashResult](offload.OpHash, context.Cause(ctx))
	}
	return failed[offload.HashResult](offload.OpHash, fmt.Errorf("tpm: stateless hashing (use HashSession): %w", offload.ErrUnsupported))
}

// Cipher fails with offload.ErrUnsupported: the engine holds no symmetric
// keys.
func (e *Engine) Cipher(ctx context.Context, req *offload.CipherRequest) *offload.Future[[]byte] {
	return failed[[]byte](offload.OpCipher, fmt.Errorf("tpm: symmetric ciphers: %w", offload.ErrUnsupported))
}
