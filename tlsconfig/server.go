package tlsconfig

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// Options configures the server configuration that Options.Server makes.
// The zero value is ready: no timeout of its own, crypto/rand.
type Options struct {
	// SignTimeout bounds how long one handshake waits for one engine
	// operation; 0 means no bound beyond the handshake's context and the
	// client's connection.
	SignTimeout time.Duration

	// Rand, if not nil, becomes the configuration's Rand: the source of
	// the handshake's nonces, key shares and session ticket keys. An
	// rng.Reader over an engine draws them from the device.
	Rand io.Reader
}

// Server returns a server configuration over certs; it is Options{}.Server.
func Server(certs ...tls.Certificate) *tls.Config { return Options{}.Server(certs...) }

// Server returns a server configuration whose GetCertificate chooses among
// certs for each handshake: the first certificate the client can use
// (tls.ClientHelloInfo.SupportsCertificate: the server name given by SNI
// against the leaf's names, wildcards included, and the signature schemes,
// curves and versions the client offers); if none, the first whose leaf
// matches the server name, so the client is told why in an alert; if none,
// the first. With no certs every handshake fails.
//
// The certificate crypto/tls receives is a copy whose private key signs
// with the handshake's context (see the package doc), when the key is a
// ContextSigner; other keys are used as they are. certs are not modified;
// their Leaf is parsed here when missing.
//
// The configuration's Certificates holds the same certificates, so code
// that fills an empty Certificates with a certificate of its own (as
// net/http/httptest's StartTLS does) leaves them in place, and every
// client is served an offloaded key. crypto/tls asks GetCertificate only
// when the client names a server (SNI) or Certificates is empty; a client
// that names none (one connecting to an IP address) gets the certificate
// crypto/tls picks from Certificates, whose key signs with
// Options.SignTimeout but without the handshake's context. Setting
// Certificates to nil makes every handshake go through GetCertificate.
// The other fields of the returned configuration are the zero values,
// which the caller may set.
func (o Options) Server(certs ...tls.Certificate) *tls.Config {
	certs = slices.Clone(certs)
	fixed := make([]tls.Certificate, len(certs))
	for i := range certs {
		c := &certs[i]
		if c.Leaf == nil && len(c.Certificate) > 0 {
			// A leaf that does not parse is left nil; SupportsCertificate
			// then reports it, and crypto/tls does too.
			c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		fixed[i] = *withContext(c, nil, nil, o.SignTimeout)
	}
	s := &server{opts: o, certs: certs}
	return &tls.Config{
		Certificates:   fixed,
		GetCertificate: s.getCertificate,
		Rand:           o.Rand,
	}
}

type server struct {
	opts  Options
	certs []tls.Certificate
}

var errNoCertificates = errors.New("tlsconfig: no certificates configured")

func (s *server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(s.certs) == 0 {
		return nil, errNoCertificates
	}
	pick := -1
	for i := range s.certs {
		if hello.SupportsCertificate(&s.certs[i]) == nil {
			pick = i
			break
		}
	}
	if pick < 0 && hello.ServerName != "" {
		for i := range s.certs {
			if l := s.certs[i].Leaf; l != nil && l.VerifyHostname(hello.ServerName) == nil {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		pick = 0
	}
	return withContext(&s.certs[pick], hello.Context(), hello.Conn, s.opts.SignTimeout), nil
}

// ClientCertificate returns a tls.Config.GetClientCertificate callback that
// offers cert when the server's request allows it
// (tls.CertificateRequestInfo.SupportsCertificate) and no certificate
// otherwise, leaving the decision to the server. The certificate handed to
// crypto/tls signs with the request's context, when its key is a
// ContextSigner.
func ClientCertificate(cert tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert.Certificate = slices.Clone(cert.Certificate)
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	return func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cri.SupportsCertificate(&cert) != nil {
			return &tls.Certificate{}, nil
		}
		return withContext(&cert, cri.Context(), nil, 0), nil
	}
}

// withContext returns a copy of c whose private key carries ctx, watches
// conn (may be nil) and applies timeout (0 for none).
func withContext(c *tls.Certificate, ctx context.Context, conn net.Conn, timeout time.Duration) *tls.Certificate {
	cs, ok := c.PrivateKey.(ContextSigner)
	if !ok {
		return c
	}
	cp := *c
	hk := handshakeKey{s: cs, ctx: ctx, conn: conn, timeout: timeout}
	if d, ok := cs.(contextDecrypter); ok {
		cp.PrivateKey = &handshakeDecrypter{handshakeKey: hk, d: d}
	} else {
		cp.PrivateKey = &hk
	}
	return &cp
}

// handshakeKey is the private key crypto/tls sees during one handshake: it
// signs with the handshake's context.
type handshakeKey struct {
	s       ContextSigner
	ctx     context.Context
	conn    net.Conn
	timeout time.Duration
}

// handshakeDecrypter is handshakeKey for an RSA key that also decrypts.
type handshakeDecrypter struct {
	handshakeKey
	d contextDecrypter
}

var (
	_ crypto.MessageSigner = (*handshakeKey)(nil)
	_ crypto.Decrypter     = (*handshakeDecrypter)(nil)
)

// errPeerGone is the cause of a handshake's engine wait given up because
// the client closed its connection.
var errPeerGone = errors.New("tlsconfig: client closed the connection while its handshake waited for the engine")

func (k *handshakeKey) Public() crypto.PublicKey { return k.s.Public() }

func (k *handshakeKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, done := k.context()
	defer done()
	return k.s.SignContext(ctx, digest, opts)
}

func (k *handshakeKey) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, done := k.context()
	defer done()
	return k.s.SignMessageContext(ctx, msg, opts)
}

func (k *handshakeDecrypter) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	ctx, done := k.context()
	defer done()
	return k.d.DecryptContext(ctx, ciphertext, opts)
}

// context returns the context for one engine operation and the function
// that releases what it holds.
func (k *handshakeKey) context() (context.Context, func()) {
	ctx := k.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var cancelTimeout context.CancelFunc
	if k.timeout > 0 {
		ctx, cancelTimeout = context.WithTimeoutCause(ctx, k.timeout,
			fmt.Errorf("tlsconfig: engine did not answer within %v: %w", k.timeout, context.DeadlineExceeded))
	}
	var stop func()
	if k.conn != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		unwatch := watchPeer(k.conn, func() { cancel(errPeerGone) })
		stop = func() { unwatch(); cancel(nil) }
	}
	return ctx, func() {
		if stop != nil {
			stop()
		}
		if cancelTimeout != nil {
			cancelTimeout()
		}
	}
}
