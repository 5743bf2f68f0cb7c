package qat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// batcher gathers one instance's GCM requests and submits them to the
// device in one call (CPA's data plane: enqueue several, ring the doorbell
// once): when Config.Batch of them are waiting, or when the first has
// waited Config.BatchWait. A request whose context ended while it waited
// never reaches the device. Requests the ring has no room for are tried
// again after a backoff, up to Config.Retries times each, then fail with
// offload.ErrBusy.
type batcher struct {
	e  *Engine
	in *inst

	mu      sync.Mutex
	closing bool // Close has begun: requests are submitted as they come
	pending []batchItem
	gen     uint64 // counts the batches taken; a timer flushes only its own
	timer   *time.Timer
}

// batchItem is one request waiting in a batch.
type batchItem struct {
	req   symReq
	ctx   context.Context
	tries int // submissions the ring refused
}

// add queues one request, submitting the batch on the caller's goroutine
// when it is full.
func (b *batcher) add(it batchItem) {
	b.mu.Lock()
	b.pending = append(b.pending, it)
	if b.closing || len(b.pending) >= b.e.cfg.Batch {
		items := b.take()
		b.mu.Unlock()
		b.submit(items)
		return
	}
	if len(b.pending) == 1 {
		gen := b.gen
		b.timer = time.AfterFunc(b.e.cfg.BatchWait, func() { b.flush(gen) })
	}
	b.mu.Unlock()
}

// close submits what waits and every later request at once, so that Close
// does not wait for a batch to fill.
func (b *batcher) close() {
	b.mu.Lock()
	b.closing = true
	items := b.take()
	b.mu.Unlock()
	b.submit(items)
}

// take empties the batch and disarms its timer. Called with mu held.
func (b *batcher) take() []batchItem {
	items := b.pending
	b.pending = nil
	b.gen++
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return items
}

// flush submits the batch the timer of generation gen was armed for, if it
// is still waiting.
func (b *batcher) flush(gen uint64) {
	b.mu.Lock()
	if b.gen != gen {
		b.mu.Unlock()
		return
	}
	items := b.take()
	b.mu.Unlock()
	b.submit(items)
}

// submit puts items on the instance's ring in as few device calls as it
// can: a refused request fails alone, and those a full ring refused are
// tried again after a backoff.
func (b *batcher) submit(items []batchItem) {
	live := items[:0]
	for _, it := range items {
		if err := it.ctx.Err(); err != nil {
			it.req.done(nil, context.Cause(it.ctx))
			continue
		}
		live = append(live, it)
	}
	items = live
	p := b.in.p
	for len(items) > 0 {
		reqs := make([]symReq, len(items))
		for i, it := range items {
			done := it.req.done
			reqs[i] = symReq{s: it.req.s, op: it.req.op, done: func(out []byte, err error) {
				p.sub()
				done(out, err)
			}}
		}
		p.add(len(reqs))
		n, err := b.in.dev.perform(reqs)
		p.subN(len(reqs) - n)
		items = items[n:]
		switch {
		case err == nil:
			return
		case errors.Is(err, StatusRetry):
			b.retry(items)
			return
		}
		items[0].req.done(nil, err)
		items = items[1:]
	}
}

// retry submits again, after a backoff, the requests a full ring refused;
// one refused Config.Retries times fails with offload.ErrBusy.
func (b *batcher) retry(items []batchItem) {
	again := items[:0]
	tries := 0
	for _, it := range items {
		it.tries++
		if it.tries > b.e.cfg.Retries {
			it.req.done(nil, fmt.Errorf("%w: the device was still full after %d retries", offload.ErrBusy, b.e.cfg.Retries))
			continue
		}
		tries = max(tries, it.tries)
		again = append(again, it)
	}
	if len(again) == 0 {
		return
	}
	time.AfterFunc(min(time.Microsecond<<min(tries, 20), b.e.cfg.MaxBackoff), func() { b.submit(again) })
}
