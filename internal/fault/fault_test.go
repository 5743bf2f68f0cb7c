package fault

import (
	"errors"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

func TestNewNothing(t *testing.T) {
	if New(Options{}) != nil {
		t.Fatal("New of zero options is not nil")
	}
}

func TestDecide(t *testing.T) {
	boom := errors.New("boom")
	isHash := func(r Request) bool { return r.Op == offload.OpHash }
	tests := []struct {
		name   string
		opts   Options
		ops    []offload.Op
		errs   []bool // which requests fail with boom
		drops  []bool
		minDel time.Duration
		maxDel time.Duration // exclusive bound on the delay; 0: exactly minDel
	}{
		{"every third", Options{Faults: []Fault{{Every: 3, Err: boom}}},
			[]offload.Op{0, 0, 0, 0, 0, 0}, []bool{false, false, true, false, false, true}, nil, 0, 0},
		{"every zero is every one", Options{Faults: []Fault{{Err: boom}}},
			[]offload.Op{0, 1}, []bool{true, true}, nil, 0, 0},
		{"predicate counts only matches", Options{Faults: []Fault{{Every: 2, If: isHash, Err: boom}}},
			[]offload.Op{offload.OpHash, offload.OpSign, offload.OpHash, offload.OpHash, offload.OpHash},
			[]bool{false, false, true, false, true}, nil, 0, 0},
		{"first fault wins", Options{Faults: []Fault{{Every: 2, Drop: true}, {Err: boom}}},
			[]offload.Op{0, 0, 0, 0}, []bool{true, false, true, false}, []bool{false, true, false, true}, 0, 0},
		{"latency", Options{Latency: 5 * time.Millisecond}, []offload.Op{0, 0}, nil, nil, 5 * time.Millisecond, 0},
		{"jitter", Options{Latency: time.Millisecond, Jitter: time.Millisecond}, []offload.Op{0, 0, 0, 0, 0},
			nil, nil, time.Millisecond, 2 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := New(tc.opts)
			for i, op := range tc.ops {
				out := in.Decide(op, nil)
				wantErr := tc.errs != nil && tc.errs[i]
				wantDrop := tc.drops != nil && tc.drops[i]
				if (out.Err == boom) != wantErr || out.Drop != wantDrop {
					t.Errorf("request %d: %+v, want err %v drop %v", i+1, out, wantErr, wantDrop)
				}
				if tc.maxDel == 0 && out.Delay != tc.minDel || tc.maxDel != 0 && (out.Delay < tc.minDel || out.Delay >= tc.maxDel) {
					t.Errorf("request %d: delay %v", i+1, out.Delay)
				}
			}
		})
	}
}

func TestSeqCountsEveryKind(t *testing.T) {
	var seqs []uint64
	in := New(Options{Faults: []Fault{{If: func(r Request) bool { seqs = append(seqs, r.Seq); return false }}}})
	for _, op := range offload.Ops {
		in.Decide(op, nil)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v", seqs)
		}
	}
	if out := New(Options{NotReady: 4}).Decide(offload.OpSign, nil); out.Spins != 4 {
		t.Fatalf("NotReady 4 decided %+v", out)
	}
}
