package qat

import (
	"crypto"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math/big"

	"github.com/offcrypt/offcrypt/offload"
)

// Status is a CPA status code, as a device answers a submission or a
// callback reports. The failing statuses are errors that errors.Is can
// test (errors.Is(err, qat.StatusRestarting)); RETRY, UNSUPPORTED and
// INVALID_PARAM also match offload.ErrBusy, offload.ErrUnsupported and
// offload.ErrInvalid, and RESTARTING and FATAL match offload.ErrUnavailable.
type Status int32

// CPA status codes (cpa.h).
const (
	StatusSuccess      Status = 0
	StatusFail         Status = -1 // the request failed on the device
	StatusRetry        Status = -2 // the ring is full: submit again later
	StatusResource     Status = -3 // the device is out of memory or sessions
	StatusInvalidParam Status = -4
	StatusFatal        Status = -5 // the device is unusable
	StatusUnsupported  Status = -6
	StatusRestarting   Status = -7 // the device is resetting
)

var statusNames = map[Status]string{
	StatusSuccess: "CPA_STATUS_SUCCESS", StatusFail: "CPA_STATUS_FAIL", StatusRetry: "CPA_STATUS_RETRY",
	StatusResource: "CPA_STATUS_RESOURCE", StatusInvalidParam: "CPA_STATUS_INVALID_PARAM",
	StatusFatal: "CPA_STATUS_FATAL", StatusUnsupported: "CPA_STATUS_UNSUPPORTED",
	StatusRestarting: "CPA_STATUS_RESTARTING",
}

func (s Status) Error() string {
	if n, ok := statusNames[s]; ok {
		return "qat: " + n
	}
	return fmt.Sprintf("qat: CPA status %d", int32(s))
}

// Unwrap maps the status onto offload's sentinels where one fits.
func (s Status) Unwrap() error {
	switch s {
	case StatusRetry:
		return offload.ErrBusy
	case StatusUnsupported:
		return offload.ErrUnsupported
	case StatusInvalidParam:
		return offload.ErrInvalid
	case StatusRestarting, StatusFatal:
		return offload.ErrUnavailable // the device cannot be reached now
	}
	return nil
}

// ErrMultiplyFailed is what an ECDSA sign reports when the device's point
// multiplication failed for the nonce it was given (r or s came out zero,
// CPA's multiplyStatus false). The engine then signs again with the next
// nonce; a signature still failing after a few nonces fails with it.
var ErrMultiplyFailed = errors.New("qat: ECDSA point multiplication failed")

// ErrFaultCheck reports an RSA result that the public exponent did not take
// back to the input: the device computed a wrong answer, which is never
// returned (a fault there could leak the private key).
var ErrFaultCheck = errors.New("qat: RSA result failed the public-exponent check")

// Generation is a QuickAssist hardware generation. It decides the RSA
// sizes a device takes.
type Generation uint8

// Generations.
const (
	Gen2 Generation = 2 // C62x, DH895xCC: RSA 2048 to 4096 bits
	Gen4 Generation = 4 // 4xxx: RSA 2048 to 8192 bits
)

func (g Generation) String() string { return fmt.Sprintf("gen%d", uint8(g)) }

// rsaBits returns the smallest and largest RSA modulus the generation
// takes.
func (g Generation) rsaBits() (lo, hi int) {
	if g >= Gen4 {
		return 2048, 8192
	}
	return 2048, 4096
}

// Default ring depths of an instance (qatlib's defaults).
const (
	DefaultAsymRing = 64
	DefaultSymRing  = 512
)

// MaxAAD is the most additional authenticated data an AES-GCM session takes.
const MaxAAD = 240

// The device interface: what the engine needs of QuickAssist and nothing
// more. Every submission returns at once: nil when the request is on the
// ring, StatusRetry when the ring is full, StatusRestarting while the device
// resets, another Status when it is refused. A request that was accepted
// completes only when someone polls its instance: its done function is then
// called exactly once, on the polling goroutine. Buffers handed to a
// submission belong to the device until done is called.

// device is a set of instances.
type device interface {
	instances() []instance
	close()
}

// instanceInfo is what an instance says about itself.
type instanceInfo struct {
	gen      Generation
	asymRing int // asymmetric requests in flight at once
	symRing  int // symmetric requests in flight at once
}

// rsaCRT is an RSA private key in CPA's second representation (p, q, dP,
// dQ, qInv), with the public half kept for the engine's checks.
type rsaCRT struct {
	n                  *big.Int
	e                  int
	p, q, dp, dq, qinv *big.Int
}

// sessionKind is what a symmetric session does.
type sessionKind uint8

const (
	gcmSeal sessionKind = iota + 1
	gcmOpen
	hashKind
)

// sessionSetup describes a symmetric session: a GCM key, a direction and an
// AAD length, or a hash.
type sessionSetup struct {
	kind   sessionKind
	key    []byte // AES key for GCM
	aadLen int    // GCM: every request on the session has this much AAD
	hash   crypto.Hash
}

// symOp is one request on a session: a GCM seal or open (iv, aad, input;
// the tag ends an open's input and a seal's output), or a hash packet
// (input whole blocks unless final; a final packet's result is the
// digest).
type symOp struct {
	iv, aad, in []byte
	final       bool
}

// symReq is one symmetric request for perform: an op on a session, and the
// function its completion calls.
type symReq struct {
	s    session
	op   symOp
	done func(out []byte, err error)
}

// session is an instance's handle on a symmetric session.
type session any

// instance is one CPA crypto instance with its rings.
type instance interface {
	info() instanceInfo
	// rsaDecrypt is cpaCyRsaDecrypt with a CRT key: in^d mod n, k bytes.
	rsaDecrypt(key *rsaCRT, in []byte, done func(out []byte, err error)) error
	// ecdsaSign is cpaCyEcdsaSignRS: r‖s for the truncated digest z with
	// the private scalar d and the nonce k; done's err is ErrMultiplyFailed
	// when the multiplication failed for this k.
	ecdsaSign(c elliptic.Curve, d, k, z []byte, done func(rs []byte, err error)) error
	newSession(s sessionSetup) (session, error)
	removeSession(s session)
	// perform submits requests on sessions in one call, as CPA's data
	// plane enqueues several and rings the device's doorbell once. It puts
	// a prefix of reqs on the ring and returns its length, with the
	// refusal of the first request it did not take (StatusRetry when the
	// ring filled), or nil when it took them all. Requests on one session
	// complete in the order they were submitted.
	perform(reqs []symReq) (int, error)
	// poll reaps the completed requests, running their done functions on
	// the calling goroutine, and returns how many it reaped.
	poll() int
}
