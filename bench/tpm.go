package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/tpm"
	"github.com/offcrypt/offcrypt/signer"
)

var tpmDigest = sha256.Sum256([]byte("offcrypt tpm bench message"))

// launchSwtpm starts a swtpm in a fresh temporary directory; stop removes
// both.
func launchSwtpm() (s *swtpm.TPM, stop func(), err error) {
	if _, err := exec.LookPath("swtpm"); err != nil {
		return nil, nil, fmt.Errorf("swtpm is needed (apt-get install swtpm): %w", err)
	}
	dir, err := os.MkdirTemp("", "offcrypt-bench-swtpm-")
	if err != nil {
		return nil, nil, err
	}
	s, err = swtpm.Launch(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() { s.Stop(); os.RemoveAll(dir) }, nil
}

// A tpmSide is one way to sign with an ECDSA P-256 key on its own swtpm
// (swtpm serves one connection at a time).
type tpmSide struct {
	name string
	open func(addr string) (sign func() error, closeFn func() error, err error)
}

// rawGoTPM signs in a loop with go-tpm's tpm2 API on one connection, a
// password session and a key created under the owner hierarchy: the device's
// ceiling. Callers share the connection through a mutex, as they must.
func rawGoTPM(addr string) (func() error, func() error, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	t := transport.FromReadWriteCloser(conn)
	tmpl := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID: tpm2.TPMECCNistP256,
		}),
	}
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tmpl)}.Execute(t)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	key := tpm2.AuthHandle{Handle: rsp.ObjectHandle, Name: rsp.Name, Auth: tpm2.PasswordAuth(nil)}
	scheme := tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})}
	mu := make(chan struct{}, 1)
	sign := func() error {
		mu <- struct{}{}
		defer func() { <-mu }()
		for {
			_, err := tpm2.Sign{KeyHandle: key, Digest: tpm2.TPM2BDigest{Buffer: tpmDigest[:]}, InScheme: scheme,
				Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull}}.Execute(t)
			if !errors.Is(err, tpm2.TPMRCRetry) { // a fresh swtpm answers the first ECDSA sign with RETRY
				return err
			}
		}
	}
	return sign, conn.Close, nil
}

// offcryptTPM signs through the tpm engine and signer/, with the engine's
// salted, encrypted session.
func offcryptTPM(addr string) (func() error, func() error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, err := tpm.Open(ctx, tpm.Config{Address: addr})
	if err != nil {
		return nil, nil, err
	}
	key, err := eng.GenerateKey(ctx, offload.KeyECDSAP256, 0)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	s, err := signer.New(key)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	sign := func() error {
		_, err := s.Sign(nil, tpmDigest[:], crypto.SHA256)
		return err
	}
	return sign, eng.Close, nil
}

// runTPM compares ECDSA P-256 signing on swtpm: a raw go-tpm loop and
// offcrypt's tpm engine, each on its own swtpm, at 1 and 16 callers.
// (go-tpm-tools' signer is not here: its client package needs modules this
// machine's module proxy does not serve.)
func runTPM(w io.Writer, cfg config) error {
	sides := []tpmSide{{"raw go-tpm", rawGoTPM}, {"offcrypt tpm (session on)", offcryptTPM}}
	var factories []func(int) func() error
	for _, sd := range sides {
		s, stop, err := launchSwtpm()
		if err != nil {
			return err
		}
		defer stop()
		sign, closeFn, err := sd.open(s.Addr)
		if err != nil {
			return fmt.Errorf("%s: %w", sd.name, err)
		}
		defer closeFn()
		if err := sign(); err != nil {
			return fmt.Errorf("%s: %w", sd.name, err)
		}
		factories = append(factories, shared(sign))
	}
	fmt.Fprintf(w, "### TPM signatures on swtpm, ECDSA P-256 over a SHA-256 digest (ops/s, median of %d)\n\n", cfg.reps)
	fmt.Fprintf(w, "| callers | raw go-tpm | offcrypt tpm | offcrypt / raw |\n|---|---|---|---|\n")
	for _, callers := range []int{1, 16} {
		r, err := compareEach(factories, callers, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "| %d | %.0f | %.0f | %.3f |\n", callers, r[0], r[1], r[1]/r[0])
	}
	fmt.Fprintf(w, "\nEach side has its own swtpm (one connection each). raw: TPM2_Sign with a password session on one connection, callers serialised by a lock. offcrypt: the tpm engine with its salted AES-CFB session, through signer/.\n\n")
	return nil
}
