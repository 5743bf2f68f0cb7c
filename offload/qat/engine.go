package qat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offcrypt/offcrypt/internal/exec"
	"github.com/offcrypt/offcrypt/internal/optcheck"
	"github.com/offcrypt/offcrypt/offload"
)

// Name is the engine's name, as in offload.Info.Name and in its errors.
const Name = "qat"

// Defaults of Config.
const (
	DefaultPollInterval  = 20 * time.Microsecond
	DefaultPollThreshold = 16
	DefaultRetries       = 64
	DefaultMaxBackoff    = time.Millisecond
	DefaultMaxInline     = 64 << 10
	DefaultBatchWait     = 20 * time.Microsecond
)

// Config configures an Engine. The zero value runs on a default Model with
// the defaults above. Negative values are refused.
type Config struct {
	// Model is the device: tier 1, the pure-Go model. Nil means
	// NewModel(ModelConfig{}). The engine closes it.
	Model *Model

	// PollInterval is how often an instance with requests outstanding is
	// polled. An instance with nothing outstanding is not polled at all:
	// its poller is parked.
	PollInterval time.Duration
	// PollThreshold polls an instance at once, without waiting for the
	// interval, when its outstanding requests reach this many.
	PollThreshold int
	// Retries bounds how many times a submission that found every ring
	// full (StatusRetry) is tried again, with a backoff doubling from 1 µs
	// up to MaxBackoff, before the request fails with offload.ErrBusy; a
	// context that ends first ends it sooner.
	Retries    int
	MaxBackoff time.Duration
	// MaxInline caps one request's payload in bytes; 0 means 64 KiB.
	MaxInline int
	// Batch, when above 1, gathers AES-GCM requests per instance and
	// submits up to Batch of them in one device call (CPA's data plane:
	// several enqueued, one doorbell). A request waits at most BatchWait
	// for its batch to fill; 0 means DefaultBatchWait. A Batch above an
	// instance's symmetric ring is cut to the ring's size. Signatures,
	// decryptions and hash packets are submitted one at a time, as CPA
	// takes them.
	Batch     int
	BatchWait time.Duration
}

// An Engine drives a QuickAssist device on the shared executor: requests
// are submitted to the instances round-robin and completed by one poller
// goroutine per instance. It implements offload.Engine, offload.Importer,
// offload.Generator and offload.HashSessioner, and is safe for concurrent
// use.
type Engine struct {
	cfg   Config
	dev   device // the model, or a later tier's binding
	insts []*inst
	next  atomic.Uint32
	// asym serves signatures and decryptions, sym ciphers and hashes: each
	// admits as many requests as its rings hold over all instances.
	asym, sym *exec.Executor[struct{}]
	sessions  *offload.Limiter // hash sessions open at once
	info      offload.Info
	closeOnce sync.Once
}

var (
	_ offload.Engine        = (*Engine)(nil)
	_ offload.Importer      = (*Engine)(nil)
	_ offload.Generator     = (*Engine)(nil)
	_ offload.HashSessioner = (*Engine)(nil)
)

// inst is one instance and its poller.
type inst struct {
	dev   instance
	info  instanceInfo
	p     *poller
	batch *batcher // GCM requests waiting to be submitted together (Config.Batch)
}

// Open starts an engine on the device cfg names: it starts one poller per
// instance. ctx bounds the start.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if err := offload.CheckContext(ctx); err != nil {
		return nil, fmt.Errorf("qat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("qat: %w", err)
	}
	if err := optcheck.Check(Name,
		optcheck.Duration("Config.PollInterval", cfg.PollInterval),
		optcheck.Int("Config.PollThreshold", cfg.PollThreshold),
		optcheck.Int("Config.Retries", cfg.Retries),
		optcheck.Duration("Config.MaxBackoff", cfg.MaxBackoff),
		optcheck.Int("Config.MaxInline", cfg.MaxInline),
		optcheck.Int("Config.Batch", cfg.Batch),
		optcheck.Duration("Config.BatchWait", cfg.BatchWait)); err != nil {
		return nil, err
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = DefaultBatchWait
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	cfg.PollThreshold = cmpOr(cfg.PollThreshold, DefaultPollThreshold)
	cfg.Retries = cmpOr(cfg.Retries, DefaultRetries)
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxInline = cmpOr(cfg.MaxInline, DefaultMaxInline)
	if cfg.Model == nil {
		m, err := NewModel(ModelConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Model = m
	}
	e := &Engine{cfg: cfg, dev: cfg.Model}
	var asymSlots, symSlots int
	gen := Gen4
	for _, d := range e.dev.instances() {
		in := &inst{dev: d, info: d.info(), p: newPoller(d, cfg.PollInterval, cfg.PollThreshold)}
		in.batch = &batcher{e: e, in: in}
		asymSlots += in.info.asymRing
		symSlots += in.info.symRing
		gen = min(gen, in.info.gen)
		e.insts = append(e.insts, in)
	}
	if cfg.Batch > 1 {
		// A batch fills only with requests admitted together: never more
		// than an instance's ring holds.
		for _, in := range e.insts {
			e.cfg.Batch = min(e.cfg.Batch, in.info.symRing)
		}
	}
	e.asym = exec.New(exec.Config[struct{}]{Name: Name, MaxInFlight: asymSlots, Resubmit: cfg.Retries})
	e.sym = exec.New(exec.Config[struct{}]{Name: Name, MaxInFlight: symSlots, Resubmit: cfg.Retries})
	e.sessions = offload.NewLimiter(symSlots)
	lo, hi := gen.rsaBits()
	e.info = offload.Info{
		Name:        Name,
		MaxInFlight: asymSlots + symSlots,
		MaxInline:   cfg.MaxInline,
		MinRSABits:  lo,
		MaxRSABits:  hi,
		Algorithms:  algorithms,
	}
	return e, nil
}

// algorithms is what the engine claims, in Algorithm order. Ed25519 and
// random numbers are not among them: QuickAssist has no Ed25519 sign in
// its CPA API as the engine uses it, and qatlib's DRBG answers
// UNSUPPORTED. SHA-2 is served through HashSession only.
var algorithms = []offload.Algorithm{
	offload.ECDSAP256, offload.ECDSAP384,
	offload.RSAPKCS1v15, offload.RSAPSS, offload.RSAOAEP, offload.RSAPKCS1v15Decrypt,
	offload.SHA224, offload.SHA256, offload.SHA384, offload.SHA512,
	offload.AESGCM,
}

// Info describes the engine. The Algorithms slice is the caller's own copy.
func (e *Engine) Info() offload.Info {
	i := e.info
	i.Algorithms = slices.Clone(i.Algorithms)
	return i
}

// Stats returns the engine's counters.
func (e *Engine) Stats() offload.Snapshot {
	s := e.sym.Stats()
	a := e.asym.Stats()
	s.Ops[offload.OpSign] = a.Ops[offload.OpSign]
	s.Ops[offload.OpDecrypt] = a.Ops[offload.OpDecrypt]
	return s
}

// Close submits the GCM requests waiting in batches at once, fails what
// has not been submitted with offload.ErrClosed, waits for every request on
// the device to complete (the pollers keep reaping them), then stops the
// pollers and closes the device. It always returns nil;
// calls after the first do nothing more.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		for _, in := range e.insts {
			in.batch.close()
		}
		e.asym.Close()
		e.sym.Close()
		for _, in := range e.insts {
			in.p.stop()
		}
		e.dev.close()
	})
	return nil
}

func (e *Engine) closed() bool { return e.asym.Closed() }

// Polls returns how many times the engine's pollers have polled.
func (e *Engine) Polls() uint64 {
	var n uint64
	for _, in := range e.insts {
		n += in.p.polls.Load()
	}
	return n
}

// place submits one request to one of insts, starting from the next in
// round-robin order and trying each once while they answer StatusRetry. It
// returns nil once one took the request, StatusRetry when every ring was
// full, or the first other refusal. done is called once, on the poller's
// goroutine, for a request that was taken.
func place[T any](e *Engine, insts []*inst, submit func(in *inst, done func(T, error)) error, done func(T, error)) error {
	start := int(e.next.Add(1))
	var err error
	for i := range insts {
		in := insts[(start+i)%len(insts)]
		in.p.add(1)
		err = submit(in, func(v T, err error) {
			in.p.sub()
			done(v, err)
		})
		if err == nil {
			return nil
		}
		in.p.sub()
		if !errors.Is(err, StatusRetry) {
			return err
		}
	}
	return err
}

// submitOne submits one symmetric request on i.
func submitOne(i *inst, s session, op symOp, done func([]byte, error)) error {
	_, err := i.dev.perform([]symReq{{s: s, op: op, done: done}})
	return err
}

// starter returns an exec Start for submit on insts: a submission that
// finds every ring full backs off (honouring ctx) and answers exec.ErrRetry,
// so the executor tries again up to Config.Retries times.
func starter[T any](e *Engine, ctx context.Context, insts []*inst, submit func(in *inst, done func(T, error)) error) func(bool, func(T, error)) error {
	tries := 0
	return func(_ bool, done func(T, error)) error {
		err := place(e, insts, submit, done)
		if !errors.Is(err, StatusRetry) {
			return err
		}
		tries++
		backoff := min(time.Microsecond<<min(tries, 20), e.cfg.MaxBackoff)
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return exec.ErrRetry
	}
}

// admit runs the checks every keyed request passes before the device: the
// request's own validation, the key is this engine's, the algorithm is one
// it claims, and the engine is open.
func (e *Engine) admit(key *offload.Key, alg offload.Algorithm, err error) error {
	switch {
	case err != nil:
		return err
	case e.closed():
		return offload.ErrClosed
	case key != nil && key.Engine() != offload.Engine(e):
		return fmt.Errorf("qat: %w: %v", offload.ErrForeignKey, key)
	case !slices.Contains(e.info.Algorithms, alg):
		return fmt.Errorf("qat: %w: %v", offload.ErrUnsupported, alg)
	}
	return nil
}

// poller reaps one instance's completions. It parks while nothing is
// outstanding, polls every interval while something is, and at once when
// the outstanding requests reach the threshold.
type poller struct {
	in          instance
	interval    time.Duration
	threshold   int64
	outstanding atomic.Int64
	polls       atomic.Uint64
	wake        chan struct{} // cap 1
	quit        chan struct{}
	done        chan struct{}
}

func newPoller(in instance, interval time.Duration, threshold int) *poller {
	p := &poller{in: in, interval: interval, threshold: int64(threshold),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

// add counts k requests about to be submitted, waking the poller when it
// was parked or the threshold is reached.
func (p *poller) add(k int) {
	n := p.outstanding.Add(int64(k))
	if old := n - int64(k); old == 0 || old < p.threshold && n >= p.threshold {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// sub counts a request completed or refused.
func (p *poller) sub() { p.outstanding.Add(-1) }

// subN counts k requests refused.
func (p *poller) subN(k int) { p.outstanding.Add(-int64(k)) }

func (p *poller) run() {
	defer close(p.done)
	t := time.NewTimer(p.interval)
	t.Stop()
	for {
		if p.outstanding.Load() == 0 {
			select {
			case <-p.wake:
			case <-p.quit:
				return
			}
			continue
		}
		p.polls.Add(1)
		p.in.poll()
		if p.outstanding.Load() == 0 {
			continue
		}
		t.Reset(p.interval)
		select {
		case <-t.C:
		case <-p.wake:
			t.Stop()
		case <-p.quit:
			t.Stop()
			return
		}
	}
}

// stop ends the poller once nothing is outstanding; Close calls it after
// the executors have seen every request complete.
func (p *poller) stop() {
	close(p.quit)
	<-p.done
}
