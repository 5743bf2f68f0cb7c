package signer_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/offcrypt/offcrypt/internal/messagetest"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
	"github.com/offcrypt/offcrypt/signer"
)

// TestMessages: the errors a signer's user meets first say each layer
// once (signer, then the engine and operation) and what went wrong, and
// still match their sentinel. The device-side messages (PINs, tokens,
// URIs) have their own table in offload/pkcs11.
func TestMessages(t *testing.T) {
	eng := newSoftEngine(t, soft.Options{})
	other := newSoftEngine(t, soft.Options{})
	s := generate(t, eng, offload.KeyECDSAP256, 0)
	foreign, err := signer.New(s.Key())
	if err != nil {
		t.Fatal(err)
	}
	closedEng, err := soft.New(soft.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := generate(t, closedEng, offload.KeyECDSAP256, 0)
	closedEng.Close()
	digest := make([]byte, 32)

	tests := []struct {
		name string
		err  func() error
		is   error
		want string
	}{
		{"closed engine", func() error { _, err := closed.Sign(rand.Reader, digest, crypto.SHA256); return err },
			offload.ErrClosed, "signer: soft sign: engine closed"},
		{"short digest", func() error { _, err := s.Sign(rand.Reader, digest[:5], crypto.SHA256); return err },
			offload.ErrInvalid, "signer: soft sign: invalid input: digest is 5 bytes, SHA-256 needs 32"},
		{"foreign key", func() error {
			_, err := other.Sign(t.Context(), &offload.SignRequest{Key: foreign.Key(), Digest: digest, Opts: crypto.SHA256}).Wait(t.Context())
			return err
		}, offload.ErrForeignKey, "soft sign: key belongs to another engine: soft ECDSA-P256 key"},
		{"decrypter from an ECDSA key", func() error { _, err := signer.NewDecrypter(s.Key()); return err },
			offload.ErrInvalid, "signer: offload: invalid input: ECDSA-P256 keys cannot decrypt; only RSA keys make a Decrypter"},
		{"PSS options on an ECDSA key", func() error {
			_, err := s.Sign(rand.Reader, digest, &rsa.PSSOptions{Hash: crypto.SHA256})
			return err
		}, offload.ErrInvalid, "signer: soft sign: invalid input: PSS options for an ECDSA-P256 key"},
		{"negative option", func() error { _, err := soft.New(soft.Options{MaxInFlight: -3}); return err },
			offload.ErrInvalid, "soft: Options.MaxInFlight is -3: offload: invalid input: an option may not be negative (zero means the default)"},
		{"key", func() error { return errors.New(fmt.Sprint(s.Key())) }, nil, "soft ECDSA-P256 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			messagetest.Check(t, tt.err(), tt.is, regexp.QuoteMeta(tt.want))
		})
	}
}
