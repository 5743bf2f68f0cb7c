package tpm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// response builds a TPM response with rc and body.
func response(rc tpm2.TPMRC, body []byte) []byte {
	r := make([]byte, headerSize+len(body))
	binary.BigEndian.PutUint16(r, uint16(tpm2.TPMSTNoSessions))
	binary.BigEndian.PutUint32(r[2:], uint32(len(r)))
	binary.BigEndian.PutUint32(r[6:], uint32(rc))
	copy(r[headerSize:], body)
	return r
}

// trickle is a byte stream that answers every write with the next scripted
// response, delivered piece bytes per Read; a nil response closes the
// stream mid-command.
type trickle struct {
	responses [][]byte
	piece     int
	pending   []byte
	closed    bool
	writes    int
}

func (s *trickle) Write(p []byte) (int, error) {
	s.writes++
	if len(s.responses) == 0 {
		return 0, io.ErrClosedPipe
	}
	s.pending, s.responses = s.responses[0], s.responses[1:]
	if s.pending == nil {
		s.closed = true
	}
	return len(p), nil
}

func (s *trickle) Read(p []byte) (int, error) {
	if s.closed || len(s.pending) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.piece)], s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func (s *trickle) Close() error { s.closed = true; return nil }

func TestConnFramesResponses(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5}, 3000)
	for _, tc := range []struct {
		name    string
		stream  *trickle
		want    []byte
		wantErr error
	}{
		{"whole", &trickle{responses: [][]byte{response(0, big)}, piece: 1 << 20}, response(0, big), nil},
		{"in 7-byte pieces", &trickle{responses: [][]byte{response(0, big)}, piece: 7}, response(0, big), nil},
		{"header only", &trickle{responses: [][]byte{response(0, nil)}, piece: 3}, response(0, nil), nil},
		{"closed mid-command", &trickle{responses: [][]byte{nil}, piece: 1}, nil, ErrTransport},
		{"closed mid-body", &trickle{responses: [][]byte{response(0, big)[:100]}, piece: 64}, nil, io.ErrUnexpectedEOF},
		{"size below header", &trickle{responses: [][]byte{{0x80, 1, 0, 0, 0, 4, 0, 0, 0, 0}}, piece: 10}, nil, ErrTransport},
		{"size too large", &trickle{responses: [][]byte{{0x80, 1, 0x7f, 0, 0, 0, 0, 0, 0, 0}}, piece: 10}, nil, ErrTransport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn(tc.stream)
			got, err := c.Send([]byte{0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x7b})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrTransport) {
					t.Fatalf("err = %v, want %v and ErrTransport", err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Send = %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}
}

func TestRetrierBounded(t *testing.T) {
	ok := response(0, []byte{1, 2, 3})
	for _, tc := range []struct {
		name      string
		responses [][]byte
		want      []byte
		wantErr   error
		writes    int
	}{
		{"retry then ok", [][]byte{response(tpm2.TPMRCRetry, nil), ok}, ok, nil, 2},
		{"yielded, testing, then ok", [][]byte{response(tpm2.TPMRCYielded, nil), response(tpm2.TPMRCTesting, nil), ok}, ok, nil, 3},
		{"retry forever", repeat(response(tpm2.TPMRCRetry, nil), 10), nil, tpm2.TPMRCRetry, 5},
		{"yielded forever", repeat(response(tpm2.TPMRCYielded, nil), 10), nil, tpm2.TPMRCYielded, 5},
		{"other errors pass", [][]byte{response(tpm2.TPMRCHandle, nil)}, response(tpm2.TPMRCHandle, nil), nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &trickle{responses: tc.responses, piece: 4}
			var slept []time.Duration
			r := &retrier{next: newConn(s), ctx: context.Background(), attempts: 5, maxPause: 4 * time.Millisecond,
				sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
			got, err := r.Send([]byte{0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x7b})
			if s.writes != tc.writes {
				t.Errorf("%d commands sent, want %d", s.writes, tc.writes)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, errRetriesExhausted) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				for _, d := range slept {
					if d > r.maxPause {
						t.Errorf("paused %v, more than %v", d, r.maxPause)
					}
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Send = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

func TestRetrierStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &trickle{responses: repeat(response(tpm2.TPMRCRetry, nil), 10), piece: 10}
	r := &retrier{next: newConn(s), ctx: ctx, attempts: 10, maxPause: time.Second, sleep: sleepCtx}
	if _, err := r.Send([]byte{0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x7b}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if s.writes != 1 {
		t.Fatalf("%d commands sent after the context ended, want 1", s.writes)
	}
}

// TestDeviceOverClosingTransport opens a Device whose stream closes in the
// middle of its first command: Open fails with ErrTransport.
func TestDeviceOverClosingTransport(t *testing.T) {
	dials := 0
	_, err := OpenDevice(context.Background(), Config{Dial: func(context.Context) (io.ReadWriteCloser, error) {
		dials++
		return &trickle{responses: [][]byte{nil}, piece: 1}, nil
	}})
	if !errors.Is(err, ErrTransport) {
		t.Fatalf("Open = %v, want ErrTransport", err)
	}
	if dials != 1 {
		t.Fatalf("%d dials, want 1", dials)
	}
}

func repeat(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
