package qat

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/elliptic"
	"encoding"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Published and assumed rates of the model's default card. The two
// published figures are for an Intel DH8950 adapter; the others are
// assumptions derived from them, named as such, until a card calibrates
// them (README.md says how).
const (
	// DefaultRSA2048 is RSA-2048 private-key operations per second
	// (published figure for a DH8950).
	DefaultRSA2048 = 31800
	// DefaultECDSAP256 is ECDSA P-256 signatures per second (published
	// figure for a DH8950).
	DefaultECDSAP256 = 44200
	// DefaultECDSAP384 is ECDSA P-384 signatures per second: an assumption,
	// the P-256 figure scaled by the square of the field size.
	DefaultECDSAP384 = DefaultECDSAP256 * 256 * 256 / (384 * 384)
	// DefaultBulk is AES-GCM and SHA-2 bytes per second: an assumption, 50
	// Gbit/s, the order of the card's advertised bulk rate.
	DefaultBulk = 50e9 / 8
	// DefaultEngines is how many requests the modelled card computes at
	// once: an assumption. The latency of one request alone is Engines
	// divided by its rate.
	DefaultEngines = 8
)

// Rates are the modelled card's throughput, for the whole card (all its
// instances together). Zero fields take the defaults above. They are a
// model, labelled as such wherever a figure from it is reported: they are
// never measured on a card.
type Rates struct {
	RSA2048   float64 // RSA-2048 private-key operations per second; other sizes scale with the cube of the modulus
	ECDSAP256 float64 // P-256 signatures per second
	ECDSAP384 float64 // P-384 signatures per second
	Bulk      float64 // AES-GCM and SHA-2 bytes per second
	Engines   int     // requests computed at once
}

func (r Rates) withDefaults() Rates {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&r.RSA2048, DefaultRSA2048)
	def(&r.ECDSAP256, DefaultECDSAP256)
	def(&r.ECDSAP384, DefaultECDSAP384)
	def(&r.Bulk, DefaultBulk)
	if r.Engines <= 0 {
		r.Engines = DefaultEngines
	}
	return r
}

// ModelConfig configures a Model. The zero value is a Gen2 card with two
// instances, qatlib's default ring depths and the default rates.
type ModelConfig struct {
	Gen       Generation // Gen2 or Gen4; 0 means Gen2
	Instances int        // 0 means 2
	AsymRing  int        // asymmetric requests in flight per instance; 0 means 64
	SymRing   int        // symmetric requests in flight per instance; 0 means 512
	Rates     Rates
	// NoLatency completes every request as soon as it is computed, without
	// the modelled service time.
	NoLatency bool
	// Workers is how many goroutines compute the results; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// A Model is tier 1: a QuickAssist card modelled in pure Go. It keeps the
// CPA programming model: instances with bounded rings, StatusRetry when a
// ring is full, results delivered only when an instance is polled, on the
// polling goroutine, per-generation RSA sizes, and the modelled service
// time of each request (Rates). Its results are real: RSA with the CRT
// key, ECDSA with the caller's nonce, AES-GCM, SHA-2 with the partial state
// kept marshaled in the session, computed on its own goroutines. It is a
// stand-in for a device, not constant-time code.
//
// Its methods inject the faults a card can show. They are safe for
// concurrent use.
type Model struct {
	cfg   ModelConfig
	insts []*modelInstance
	work  chan *mreq
	wg    sync.WaitGroup
	polls atomic.Uint64
	calls atomic.Uint64 // submission calls (doorbells)
	once  sync.Once

	mu         sync.Mutex
	free       []time.Time // each compute engine's next free time
	submitErr  error       // every submission answers it while set
	failNext   int         // requests whose completion reports StatusFail
	multFail   int         // ECDSA signs whose multiplication fails
	corrupt    int         // RSA results computed wrong
	stalled    bool        // polls reap nothing
	restarting bool        // submissions answer StatusRestarting
}

// NewModel returns a model configured by c, with its compute goroutines
// started. An Engine opened on it closes it.
func NewModel(c ModelConfig) (*Model, error) {
	if c.Instances < 0 || c.AsymRing < 0 || c.SymRing < 0 || c.Workers < 0 {
		return nil, fmt.Errorf("qat: model: negative size: %w", StatusInvalidParam)
	}
	if c.Gen == 0 {
		c.Gen = Gen2
	}
	if c.Gen != Gen2 && c.Gen != Gen4 {
		return nil, fmt.Errorf("qat: model: generation %v: %w", c.Gen, StatusInvalidParam)
	}
	c.Instances = cmpOr(c.Instances, 2)
	c.AsymRing = cmpOr(c.AsymRing, DefaultAsymRing)
	c.SymRing = cmpOr(c.SymRing, DefaultSymRing)
	c.Workers = cmpOr(c.Workers, runtime.GOMAXPROCS(0))
	c.Rates = c.Rates.withDefaults()
	m := &Model{
		cfg:  c,
		work: make(chan *mreq, c.Instances*(c.AsymRing+c.SymRing)),
		free: make([]time.Time, c.Rates.Engines),
	}
	for i := range c.Instances {
		m.insts = append(m.insts, &modelInstance{m: m, idx: i})
	}
	m.wg.Add(c.Workers)
	for range c.Workers {
		go m.compute()
	}
	return m, nil
}

func cmpOr(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// Config returns the model's configuration with its defaults filled in.
func (m *Model) Config() ModelConfig { return m.cfg }

// Polls returns how many times the model's instances have been polled.
// It stops growing while no poller runs: a parked poller costs nothing.
func (m *Model) Polls() uint64 { return m.polls.Load() }

// Submissions returns how many submission calls the model has taken (one
// per call, however many requests it carried: a doorbell each), refused
// ones included.
func (m *Model) Submissions() uint64 { return m.calls.Load() }

// FailSubmissions makes every submission answer st (StatusRetry for rings
// that stay full, StatusFail, StatusFatal, ...) until it is called again
// with StatusSuccess.
func (m *Model) FailSubmissions(st Status) {
	m.mu.Lock()
	m.submitErr = nil
	if st != StatusSuccess {
		m.submitErr = st
	}
	m.mu.Unlock()
}

// FailNext makes the next n requests accepted complete with StatusFail.
func (m *Model) FailNext(n int) { m.add(&m.failNext, n) }

// FailMultiply makes the next n ECDSA signs report ErrMultiplyFailed.
func (m *Model) FailMultiply(n int) { m.add(&m.multFail, n) }

// CorruptRSA makes the next n RSA operations return a wrong result, as a
// faulty device would.
func (m *Model) CorruptRSA(n int) { m.add(&m.corrupt, n) }

func (m *Model) add(v *int, n int) {
	m.mu.Lock()
	*v += n
	m.mu.Unlock()
}

// Stall makes polls reap nothing until Resume: requests stay on their rings
// as on a device that stopped answering.
func (m *Model) Stall() { m.set(&m.stalled, true) }

// Resume ends Stall.
func (m *Model) Resume() { m.set(&m.stalled, false) }

// set sets one of the model's flags.
func (m *Model) set(flag *bool, v bool) {
	m.mu.Lock()
	*flag = v
	m.mu.Unlock()
}

// Reset resets the card: every request in flight completes, on its next
// poll, with StatusRestarting, and submissions answer StatusRestarting
// until Restarted. Sessions survive the reset.
func (m *Model) Reset() {
	m.set(&m.restarting, true)
	for _, in := range m.insts {
		in.mu.Lock()
		for _, r := range in.flight {
			if r.failed == nil {
				r.failed = StatusRestarting
			}
		}
		in.mu.Unlock()
	}
}

// Restarted ends a Reset: the card takes requests again.
func (m *Model) Restarted() { m.set(&m.restarting, false) }

func (m *Model) instances() []instance {
	out := make([]instance, len(m.insts))
	for i, in := range m.insts {
		out[i] = in
	}
	return out
}

// close stops the compute goroutines. The engine closes its model after
// every request has completed.
func (m *Model) close() {
	m.once.Do(func() {
		close(m.work)
		m.wg.Wait()
	})
}

func (m *Model) compute() {
	defer m.wg.Done()
	for r := range m.work {
		out, err := r.run()
		in := r.inst
		in.mu.Lock()
		r.out, r.err, r.computed = out, err, true
		in.mu.Unlock()
	}
}

// service returns when a request needing d of one engine's time, submitted
// now, completes: on the engine that frees first.
func (m *Model) service(now time.Time, d time.Duration) time.Time {
	if m.cfg.NoLatency {
		return now
	}
	i := 0
	for j, t := range m.free {
		if t.Before(m.free[i]) {
			i = j
		}
	}
	start := m.free[i]
	if start.Before(now) {
		start = now
	}
	m.free[i] = start.Add(d)
	return m.free[i]
}

// perOp is the service time of one request done at rate per second on one
// of the card's engines.
func (m *Model) perOp(rate float64) time.Duration {
	return time.Duration(float64(m.cfg.Rates.Engines) / rate * float64(time.Second))
}

// mreq is one request on a model instance.
type mreq struct {
	inst  *modelInstance
	asym  bool
	ecdsa bool          // multiplication failures apply
	rsa   bool          // corrupted results apply
	cost  time.Duration // of one compute engine's time
	run   func() ([]byte, error)
	done  func([]byte, error)
	due   time.Time

	// Under inst.mu:
	out      []byte
	err      error
	computed bool
	failed   error // set by Reset: reported instead of the result
}

// modelInstance is one instance of the model.
type modelInstance struct {
	m   *Model
	idx int

	mu     sync.Mutex
	flight []*mreq // in submission order
	asym   int     // requests on the asymmetric ring
	sym    int     // on the symmetric ring
}

func (in *modelInstance) info() instanceInfo {
	return instanceInfo{gen: in.m.cfg.Gen, asymRing: in.m.cfg.AsymRing, symRing: in.m.cfg.SymRing}
}

// submit puts r on its ring, or answers why it cannot.
func (in *modelInstance) submit(r *mreq) error {
	_, err := in.submitAll([]*mreq{r})
	return err
}

// submitAll puts a prefix of rs on the rings in one call, as far as they
// have room, and returns its length and the refusal of the next one.
func (in *modelInstance) submitAll(rs []*mreq) (int, error) {
	m := in.m
	m.calls.Add(1)
	m.mu.Lock()
	switch {
	case m.submitErr != nil:
		err := m.submitErr
		m.mu.Unlock()
		return 0, err
	case m.restarting:
		m.mu.Unlock()
		return 0, StatusRestarting
	}
	now := time.Now()
	in.mu.Lock()
	n := 0
	var err error
	for _, r := range rs {
		if r.asym && in.asym == m.cfg.AsymRing || !r.asym && in.sym == m.cfg.SymRing {
			err = StatusRetry
			break
		}
		m.inject(r)
		r.inst = in
		r.due = m.service(now, r.cost)
		if r.asym {
			in.asym++
		} else {
			in.sym++
		}
		in.flight = append(in.flight, r)
		n++
	}
	in.mu.Unlock()
	m.mu.Unlock()
	for _, r := range rs[:n] {
		m.work <- r // never blocks: the channel holds every ring's requests
	}
	return n, err
}

// inject applies the faults set for the next requests to r. Called with
// m.mu held.
func (m *Model) inject(r *mreq) {
	if m.failNext > 0 {
		m.failNext--
		r.failed = StatusFail
	}
	run := r.run
	switch {
	case r.ecdsa && m.multFail > 0:
		m.multFail--
		r.run = func() ([]byte, error) { return nil, ErrMultiplyFailed }
	case r.rsa && m.corrupt > 0:
		m.corrupt--
		r.run = func() ([]byte, error) {
			out, err := run()
			if err == nil {
				out[len(out)-1] ^= 1
			}
			return out, err
		}
	}
}

func (in *modelInstance) poll() int {
	m := in.m
	m.polls.Add(1)
	m.mu.Lock()
	stalled := m.stalled
	m.mu.Unlock()
	if stalled {
		return 0
	}
	now := time.Now()
	var reaped []*mreq
	in.mu.Lock()
	keep := in.flight[:0]
	for _, r := range in.flight {
		// A reset request waits for its computation too: the device owns
		// its buffers until then.
		if r.computed && (r.failed != nil || !now.Before(r.due)) {
			reaped = append(reaped, r)
			if r.asym {
				in.asym--
			} else {
				in.sym--
			}
			continue
		}
		keep = append(keep, r)
	}
	clear(in.flight[len(keep):])
	in.flight = keep
	in.mu.Unlock()
	for _, r := range reaped {
		if r.failed != nil {
			r.done(nil, r.failed)
		} else {
			r.done(r.out, r.err)
		}
	}
	return len(reaped)
}

func (in *modelInstance) rsaDecrypt(key *rsaCRT, c []byte, done func([]byte, error)) error {
	bits := key.n.BitLen()
	lo, hi := in.m.cfg.Gen.rsaBits()
	if bits < lo || bits > hi {
		return fmt.Errorf("qat: %d-bit RSA on a %v device: %w", bits, in.m.cfg.Gen, StatusUnsupported)
	}
	k := (bits + 7) / 8
	x := new(big.Int).SetBytes(c)
	rate := in.m.cfg.Rates.RSA2048 * (2048 / float64(bits)) * (2048 / float64(bits)) * (2048 / float64(bits))
	r := &mreq{asym: true, rsa: true, cost: in.m.perOp(rate), done: done, run: func() ([]byte, error) {
		// Garner's recombination: m = m2 + q·(qInv·(m1 − m2) mod p).
		m1 := new(big.Int).Exp(x, key.dp, key.p)
		m2 := new(big.Int).Exp(x, key.dq, key.q)
		h := m1.Sub(m1, m2)
		h.Mul(h, key.qinv).Mod(h, key.p)
		h.Mul(h, key.q).Add(h, m2)
		return h.FillBytes(make([]byte, k)), nil
	}}
	return in.submit(r)
}

func (in *modelInstance) ecdsaSign(c elliptic.Curve, d, k, z []byte, done func([]byte, error)) error {
	rate := in.m.cfg.Rates.ECDSAP256
	switch c {
	case elliptic.P256():
	case elliptic.P384():
		rate = in.m.cfg.Rates.ECDSAP384
	default:
		return fmt.Errorf("qat: ECDSA on %s: %w", c.Params().Name, StatusUnsupported)
	}
	n := c.Params().N
	size := (n.BitLen() + 7) / 8
	r := &mreq{asym: true, ecdsa: true, cost: in.m.perOp(rate), done: done, run: func() ([]byte, error) {
		kk := new(big.Int).SetBytes(k)
		x, _ := c.ScalarBaseMult(k)
		rr := x.Mod(x, n)
		if rr.Sign() == 0 {
			return nil, ErrMultiplyFailed
		}
		// s = k⁻¹ (z + r·d) mod n, with k⁻¹ = k^(n−2) (n is prime).
		s := new(big.Int).Mul(rr, new(big.Int).SetBytes(d))
		s.Add(s, new(big.Int).SetBytes(z)).Mod(s, n)
		s.Mul(s, kk.Exp(kk, new(big.Int).Sub(n, big.NewInt(2)), n)).Mod(s, n)
		if s.Sign() == 0 {
			return nil, ErrMultiplyFailed
		}
		out := make([]byte, 2*size)
		rr.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	}}
	return in.submit(r)
}

// modelSession is a session's memory on the model: the GCM key schedule,
// or the marshaled partial hash state, packets applied in submission order.
type modelSession struct {
	setup sessionSetup
	gcm   cipher.AEAD

	mu    sync.Mutex
	cond  *sync.Cond
	next  uint64 // sequence number of the next packet submitted
	turn  uint64 // sequence number of the packet whose turn it is
	state []byte // marshaled hash state; nil at the start of a message
}

func (in *modelInstance) newSession(s sessionSetup) (session, error) {
	ms := &modelSession{setup: s}
	ms.cond = sync.NewCond(&ms.mu)
	switch s.kind {
	case gcmSeal, gcmOpen:
		if s.aadLen < 0 || s.aadLen > MaxAAD {
			return nil, fmt.Errorf("qat: GCM session with %d bytes of AAD, at most %d: %w", s.aadLen, MaxAAD, StatusInvalidParam)
		}
		b, err := aes.NewCipher(s.key)
		if err != nil {
			return nil, fmt.Errorf("qat: %v: %w", err, StatusInvalidParam)
		}
		if ms.gcm, err = cipher.NewGCM(b); err != nil {
			return nil, fmt.Errorf("qat: %v: %w", err, StatusInvalidParam)
		}
	case hashKind:
		switch s.hash {
		case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		default:
			return nil, fmt.Errorf("qat: hash %v: %w", s.hash, StatusUnsupported)
		}
	default:
		return nil, StatusInvalidParam
	}
	return ms, nil
}

func (in *modelInstance) removeSession(session) {}

func (in *modelInstance) perform(reqs []symReq) (int, error) {
	rs := make([]*mreq, 0, len(reqs))
	var err error
	for _, q := range reqs {
		var r *mreq
		if r, err = in.prepare(q); err != nil {
			break
		}
		rs = append(rs, r)
	}
	n, serr := in.submitAll(rs)
	if n < len(rs) {
		err = serr
	}
	// Hash packets that never reached the device give up their turns,
	// the last numbered first.
	for i := len(rs) - 1; i >= n; i-- {
		if ms := reqs[i].s.(*modelSession); ms.setup.kind == hashKind {
			ms.skip()
		}
	}
	return n, err
}

// prepare makes the model's request for q, or refuses q.
func (in *modelInstance) prepare(q symReq) (*mreq, error) {
	ms, ok := q.s.(*modelSession)
	if !ok {
		return nil, StatusInvalidParam
	}
	op := q.op
	var run func() ([]byte, error)
	switch ms.setup.kind {
	case gcmSeal, gcmOpen:
		if len(op.aad) != ms.setup.aadLen || len(op.iv) != ms.gcm.NonceSize() {
			return nil, StatusInvalidParam
		}
		if ms.setup.kind == gcmSeal {
			run = func() ([]byte, error) { return ms.gcm.Seal(nil, op.iv, op.in, op.aad), nil }
		} else {
			run = func() ([]byte, error) { return ms.gcm.Open(nil, op.iv, op.in, op.aad) }
		}
	case hashKind:
		h := ms.setup.hash.New()
		if !op.final && len(op.in)%h.BlockSize() != 0 {
			return nil, StatusInvalidParam
		}
		ms.mu.Lock()
		seq := ms.next
		ms.next++
		ms.mu.Unlock()
		run = func() ([]byte, error) { return ms.hashPacket(seq, op) }
	}
	cost := time.Duration(float64(in.m.cfg.Rates.Engines) * float64(len(op.in)) / in.m.cfg.Rates.Bulk * float64(time.Second))
	return &mreq{run: run, done: q.done, cost: cost}, nil
}

// skip gives up the sequence number of a packet that was refused: the last
// one numbered (perform gives up the refused ones from the last).
func (ms *modelSession) skip() {
	ms.mu.Lock()
	ms.next--
	ms.mu.Unlock()
}

// hashPacket applies packet seq to the session's state once every earlier
// packet has been applied.
func (ms *modelSession) hashPacket(seq uint64, op symOp) ([]byte, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for ms.turn != seq {
		ms.cond.Wait()
	}
	defer func() {
		ms.turn++
		ms.cond.Broadcast()
	}()
	h := ms.setup.hash.New()
	if ms.state != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(ms.state); err != nil {
			return nil, fmt.Errorf("qat: hash state: %v: %w", err, StatusFail)
		}
	}
	h.Write(op.in)
	if op.final {
		ms.state = nil
		return h.Sum(nil), nil
	}
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("qat: hash state: %v: %w", err, StatusFail)
	}
	ms.state = st
	return nil, nil
}
