package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/compose"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// The card the capacity and latency tables model: the default DH8950
// figures scaled down to rates this host can compute while the engine runs,
// because the model computes every result in Go on the host's CPUs; at the
// card's published 44,200 ECDSA P-256 signatures per second the host, not
// the engine, would be the limit. The ratio to capacity measures how full
// the engine keeps the modelled card.
var benchRates = qat.Rates{ECDSAP256: 4000, Bulk: 400e6}

// tier1 labels every figure from the model.
const tier1 = "tier 1, modelled"

// runQAT prints the QuickAssist tables, every figure from tier 1, the
// modelled card: the engine's throughput against the modelled capacity by
// concurrency, poll interval and batching against latency, the poller's
// CPU per 1,000 operations and idle, and the threshold wrapper against the
// software engine alone.
func runQAT(w io.Writer, cfg config) error {
	if err := qatCapacity(w, cfg); err != nil {
		return fmt.Errorf("capacity: %w", err)
	}
	if err := qatLatency(w, cfg); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if err := qatIdle(w, cfg); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	if err := qatThreshold(w, cfg); err != nil {
		return fmt.Errorf("threshold: %w", err)
	}
	return nil
}

// openModel opens the engine on a fresh model with benchRates.
func openModel(c qat.Config) (*qat.Engine, *qat.Model, error) {
	m, err := qat.NewModel(qat.ModelConfig{Rates: benchRates})
	if err != nil {
		return nil, nil, err
	}
	c.Model = m
	e, err := qat.Open(context.Background(), c)
	return e, m, err
}

// modelSigner opens the engine on a fresh model and an ECDSA P-256
// signing op on it (see ecdsaSigner). The caller closes the engine.
func modelSigner() (*qat.Engine, *qat.Model, func() error, error) {
	eng, m, err := openModel(qat.Config{})
	if err != nil {
		return nil, nil, nil, err
	}
	sign, err := ecdsaSigner(eng)
	if err != nil {
		eng.Close()
		return nil, nil, nil, err
	}
	return eng, m, sign, nil
}

// ecdsaSigner returns an op that signs one digest on eng with a fresh
// P-256 key and checks the first signature.
func ecdsaSigner(eng offload.Engine) (func() error, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := eng.(offload.Importer).ImportKey(priv)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte("bench"))
	ctx := context.Background()
	req := &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}
	sig, err := eng.Sign(ctx, req).Wait(ctx)
	if err != nil {
		return nil, err
	}
	if !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig) {
		return nil, errors.New("ECDSA P-256 signature does not verify")
	}
	return func() error {
		_, err := eng.Sign(ctx, &offload.SignRequest{Key: key, Digest: digest[:], Opts: crypto.SHA256}).Wait(ctx)
		return err
	}, nil
}

// qatCapacity: ECDSA P-256 signatures by concurrency against the modelled
// card's capacity, with the software engine on this host beside it.
func qatCapacity(w io.Writer, cfg config) error {
	eng, m, sign, err := modelSigner()
	if err != nil {
		return err
	}
	defer eng.Close()
	sw, err := soft.New(soft.Options{})
	if err != nil {
		return err
	}
	defer sw.Close()
	swSign, err := ecdsaSigner(sw)
	if err != nil {
		return err
	}
	capacity := benchRates.ECDSAP256
	mc := m.Config()
	fmt.Fprintf(w, "### QuickAssist (%s): ECDSA P-256 sign against the card's capacity\n\n", tier1)
	fmt.Fprintf(w, "Modelled card: %d instances, %d asymmetric requests in flight per instance, %d compute engines, capacity %.0f signatures/s (the DH8950's published 44,200/s scaled down to what this host computes beside the engine).\n\n",
		mc.Instances, mc.AsymRing, mc.Rates.Engines, capacity)
	fmt.Fprintln(w, "| callers | qat ops/s | of capacity | p50 | p99 | CPUs used | soft engine ops/s (this host) |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, callers := range []int{1, 4, 16, 64, 128} {
		lat := newLatencies(callers, 1<<16)
		r, err := measureSides([]func(int) func() error{lat.wrap(sign), shared(swSign)}, []int{callers, callers}, cfg)
		if err != nil {
			return err
		}
		s := lat.sorted()
		fmt.Fprintf(w, "| %d | %.0f | %.3f | %v | %v | %s | %.0f |\n", callers, r[0].rate, r[0].rate/capacity,
			percentile(s, 0.5).Round(time.Microsecond), percentile(s, 0.99).Round(time.Microsecond), coresUsed(r[0]), r[1].rate)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Every qat figure is %s: the card's rates are parameters, never measured on a card. One signature alone takes Engines/rate = %v on the modelled card; the latencies add the engine, the poll interval (%v) and the host's own compute of the result. The soft column is the software engine signing on this host's CPUs with the same callers, for scale.\n\n",
		tier1, time.Duration(float64(mc.Rates.Engines)/capacity*float64(time.Second)), qat.DefaultPollInterval)
	return nil
}

// gcmSealer returns a per-caller op that seals size bytes with AES-128-GCM
// on eng through cipher/, checked once against crypto/cipher.
func gcmSealer(eng offload.Engine, raw []byte, size int) (func(int) func() error, error) {
	key, err := eng.(offload.Importer).ImportKey(raw)
	if err != nil {
		return nil, err
	}
	g, err := ocipher.NewGCM(key)
	if err != nil {
		return nil, err
	}
	blk, _ := aes.NewCipher(raw)
	std, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	pt := make([]byte, size)
	rand.Read(pt)
	ctx := context.Background()
	got, err := g.SealContext(ctx, nil, nonce, pt, nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, std.Seal(nil, nonce, pt, nil)) {
		return nil, fmt.Errorf("AES-GCM over %s differs from crypto/cipher", eng.Info().Name)
	}
	return func(int) func() error {
		dst := callerBuf(size + 16)[:0]
		return func() error {
			_, err := g.SealContext(ctx, dst, nonce, pt, nil)
			return err
		}
	}, nil
}

// qatLatency: 2 KiB AES-GCM seals on the modelled card with the poll
// interval and batching varied, at one caller and at many.
func qatLatency(w io.Writer, cfg config) error {
	const size = 2 << 10
	raw := make([]byte, 16)
	rand.Read(raw)
	fmt.Fprintf(w, "### QuickAssist (%s): poll interval and batching against latency, 2 KiB AES-GCM seal\n\n", tier1)
	fmt.Fprintln(w, "| poll interval | batch (wait) | callers | ops/s | p50 | p99 | device calls per op | polls per op | CPU per op |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range []struct {
		poll  time.Duration
		batch int
	}{
		{5 * time.Microsecond, 0},
		{qat.DefaultPollInterval, 0},
		{100 * time.Microsecond, 0},
		{qat.DefaultPollInterval, 8},
		{qat.DefaultPollInterval, 32},
	} {
		for _, callers := range []int{1, 64} {
			eng, m, err := openModel(qat.Config{PollInterval: row.poll, Batch: row.batch})
			if err != nil {
				return err
			}
			seal, err := gcmSealer(eng, raw, size)
			if err != nil {
				eng.Close()
				return err
			}
			lat := newLatencies(callers, 1<<16)
			calls0, polls0 := m.Submissions(), eng.Polls()
			r, err := measureSides([]func(int) func() error{latEach(lat, seal)}, []int{callers}, cfg)
			calls, polls := m.Submissions()-calls0, eng.Polls()-polls0
			ops := float64(len(lat.sorted()))
			eng.Close()
			if err != nil {
				return err
			}
			s := lat.sorted()
			batch := "off"
			if row.batch > 1 {
				batch = fmt.Sprintf("%d (%v)", row.batch, qat.DefaultBatchWait)
			}
			fmt.Fprintf(w, "| %v | %s | %d | %.0f | %v | %v | %.2f | %.2f | %v |\n", row.poll, batch, callers, r[0].rate,
				percentile(s, 0.5).Round(time.Microsecond), percentile(s, 0.99).Round(time.Microsecond),
				float64(calls)/ops, float64(polls)/ops, r[0].cpuPerOp.Round(100*time.Nanosecond))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Every figure is %s, on a card whose bulk rate is set to %.0f MB/s. Device calls per op: submission calls (doorbells) the model took per seal; a batch shares one. Polls per op: the pollers' polls per seal. CPU per op: the process's CPU time per seal, everything included (callers, engine, pollers, and the model computing the result).\n\n",
		tier1, benchRates.Bulk/1e6)
	return nil
}

// latEach wraps a per-caller factory so each op's latency goes to lat.
func latEach(lat *latencies, each func(int) func() error) func(int) func() error {
	return func(i int) func() error { return lat.wrap(each(i))(i) }
}

// qatIdle: the poller's cost while work flows (polls and process CPU per
// 1,000 operations at the default interval, one caller: an ECDSA P-256
// signature, whose result the model computes at some cost, and a 64-byte
// GCM seal, whose computation is nearly free, so that its row is mostly
// the engine, the poller and the runtime's wake-ups) and while nothing
// does.
func qatIdle(w io.Writer, cfg config) error {
	eng, _, sign, err := modelSigner()
	if err != nil {
		return err
	}
	defer eng.Close()
	raw := make([]byte, 16)
	rand.Read(raw)
	seal, err := gcmSealer(eng, raw, 64)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "### QuickAssist (%s): the poller busy and idle\n\n", tier1)
	fmt.Fprintln(w, "| state | ops | polls | polls per 1,000 ops | process CPU per 1,000 ops | process CPU per second |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, row := range []struct {
		name string
		op   func(int) func() error
	}{
		{"ECDSA P-256 sign", shared(sign)},
		{"64 B AES-GCM seal", seal},
	} {
		polls0 := eng.Polls()
		c, err := opsPerSecondEach(row.op, 1, cfg.dur)
		if err != nil {
			return err
		}
		polls := eng.Polls() - polls0
		fmt.Fprintf(w, "| 1 caller, %s, poll every %v | %d | %d | %.0f | %v | %v |\n", row.name, qat.DefaultPollInterval,
			c.ops, polls, 1000*float64(polls)/float64(max(c.ops, 1)), (1000 * c.cpuPerOp()).Round(time.Microsecond),
			time.Duration(float64(c.cpu)/cfg.dur.Seconds()).Round(time.Microsecond))
	}
	idle := 2 * cfg.dur
	time.Sleep(10 * time.Millisecond) // the last completion's poll
	polls1, cpu1 := eng.Polls(), processCPU()
	time.Sleep(idle)
	idlePolls, idleCPU := eng.Polls()-polls1, processCPU()-cpu1
	fmt.Fprintf(w, "| idle for %v | 0 | %d | | | %v |\n", idle, idlePolls,
		time.Duration(float64(idleCPU)/idle.Seconds()).Round(time.Microsecond))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Every figure is %s. Busy: the process's CPU time covers the caller, the engine, the pollers, the Go runtime's wake-ups and the model computing each result, so it bounds the poller's share from above. Idle: a poller with nothing outstanding is parked on a channel and polls nothing; the process CPU left is the Go runtime's own.\n\n", tier1)
	return nil
}

// qatThreshold: AES-128-GCM seal through cipher/ on the software engine
// alone, on the modelled card alone, and on the two composed with the
// default threshold (2,048 bytes).
func qatThreshold(w io.Writer, cfg config) error {
	raw := make([]byte, 16)
	rand.Read(raw)
	sw, err := soft.New(soft.Options{})
	if err != nil {
		return err
	}
	defer sw.Close()
	dev, _, err := openModel(qat.Config{})
	if err != nil {
		return err
	}
	defer dev.Close()
	csw, err := soft.New(soft.Options{})
	if err != nil {
		return err
	}
	cdev, _, err := openModel(qat.Config{})
	if err != nil {
		csw.Close()
		return err
	}
	both, err := compose.New(cdev, csw, compose.Options{})
	if err != nil {
		cdev.Close()
		csw.Close()
		return err
	}
	defer both.Close()

	fmt.Fprintf(w, "### AES-128-GCM seal through cipher/: soft alone, the card alone (%s), and compose(qat, soft) with the default %d-byte threshold\n\n", tier1, compose.DefaultThreshold)
	fmt.Fprintln(w, "| plaintext | callers | soft ops/s | qat ops/s | compose ops/s | compose / soft |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, size := range []int{64, 2 << 10, 16 << 10} {
		var sides []func(int) func() error
		for _, eng := range []offload.Engine{sw, dev, both} {
			s, err := gcmSealer(eng, raw, size)
			if err != nil {
				return err
			}
			sides = append(sides, s)
		}
		for _, callers := range []int{1, runtime.GOMAXPROCS(0)} {
			r, err := measureSides(sides, []int{callers, callers, callers}, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f | %.3f |\n", sizeName(size), callers, r[0].rate, r[1].rate, r[2].rate, r[2].rate/r[0].rate)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "The qat and compose columns at and above the threshold are %s (a card with a bulk rate of %.0f MB/s); below it compose runs on the software engine, measured on this host. Each side has engines of its own.\n",
		tier1, benchRates.Bulk/1e6)
	return nil
}
