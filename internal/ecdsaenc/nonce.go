package ecdsaenc

import (
	"crypto"
	"crypto/elliptic"
	"crypto/hmac"
	"fmt"
	"hash"
	"io"
	"math/big"
)

// Nonces is the source of the secret nonces k of one ECDSA signature, for a
// device that signs with the caller's nonce: RFC 6979's HMAC_DRBG keyed
// with the private key and the digest and, when a random source is given,
// fresh random bytes as the additional data k' of RFC 6979, section 3.6.
// This is the hedged construction: with the random source working every
// signature gets a nonce nobody can predict, and with it broken (or nil)
// the nonce is still the deterministic RFC 6979 one, never repeated for
// two different digests.
//
// Next returns the first candidate, and each later call the next one, as
// RFC 6979's step h does when a candidate is rejected: a device whose
// point multiplication failed (r or s came out zero) is given the next
// nonce.
type Nonces struct {
	c       elliptic.Curve
	n       *big.Int
	size    int // the order's size in bytes
	mac     func([]byte) hash.Hash
	k, v    []byte
	started bool
}

// NewNonces returns the nonce source for signing digest with the private
// scalar d (big-endian, at most the order's size) on curve c, with h the
// hash of the HMAC (the hash the digest was made with; SHA-256 when h is
// zero or unavailable). random, if not nil, supplies the additional data;
// an error reading it is returned.
func NewNonces(c elliptic.Curve, h crypto.Hash, d, digest []byte, random io.Reader) (*Nonces, error) {
	if h == 0 || !h.Available() {
		h = crypto.SHA256
	}
	n := c.Params().N
	size := orderSize(c)
	if len(d) > size {
		return nil, fmt.Errorf("ecdsaenc: private scalar of %d bytes for %s", len(d), c.Params().Name)
	}
	var extra []byte
	if random != nil {
		extra = make([]byte, size)
		if _, err := io.ReadFull(random, extra); err != nil {
			return nil, fmt.Errorf("ecdsaenc: reading the nonce's randomness: %w", err)
		}
	}
	// int2octets(x) and bits2octets(h1): both the order's size in bytes.
	x := make([]byte, size)
	copy(x[size-len(d):], d)
	z := new(big.Int).SetBytes(Truncate(c, digest))
	if z.Cmp(n) >= 0 {
		z.Sub(z, n)
	}
	hl := h.Size()
	g := &Nonces{c: c, n: n, size: size, mac: func(key []byte) hash.Hash { return hmac.New(h.New, key) }}
	g.k = make([]byte, hl)
	g.v = make([]byte, hl)
	for i := range g.v {
		g.v[i] = 1
	}
	for _, sep := range []byte{0, 1} {
		m := g.mac(g.k)
		m.Write(g.v)
		m.Write([]byte{sep})
		m.Write(x)
		m.Write(z.FillBytes(make([]byte, size)))
		m.Write(extra)
		g.k = m.Sum(g.k[:0])
		g.v = g.hmac(g.v)
	}
	clear(x)
	return g, nil
}

// hmac returns HMAC_K(msg) in a new slice.
func (g *Nonces) hmac(msg ...[]byte) []byte {
	m := g.mac(g.k)
	for _, p := range msg {
		m.Write(p)
	}
	return m.Sum(nil)
}

// Next returns the next nonce candidate k, 1 ≤ k < n, big-endian in the
// order's size in bytes.
func (g *Nonces) Next() []byte {
	for {
		if g.started {
			g.k = g.hmac(g.v, []byte{0})
			g.v = g.hmac(g.v)
		}
		g.started = true
		var t []byte
		for len(t) < g.size {
			g.v = g.hmac(g.v)
			t = append(t, g.v...)
		}
		k := new(big.Int).SetBytes(Truncate(g.c, t[:g.size]))
		if k.Sign() > 0 && k.Cmp(g.n) < 0 {
			return k.FillBytes(make([]byte, g.size))
		}
	}
}
