package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
)

func TestHashSequences(t *testing.T) {
	d, _ := openSwtpm(t, Config{})
	ctx := testCtx(t)
	// Keys hold slots too, so the sequences below must take turns.
	for range 2 {
		if _, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256}); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 5000)
	rand.Read(data)
	type run struct {
		h    crypto.Hash
		seq  *Sequence
		want []byte
	}
	var runs []*run
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA256, crypto.SHA384} {
		seq, err := d.StartHash(ctx, h)
		if err != nil {
			t.Fatalf("StartHash %v: %v", h, err)
		}
		hh := h.New()
		hh.Write(data)
		hh.Write(data[:777])
		runs = append(runs, &run{h, seq, hh.Sum(nil)})
	}
	for _, r := range runs { // interleaved: each update reloads its sequence
		if err := d.UpdateHash(ctx, r.seq, data[:2500]); err != nil {
			t.Fatalf("UpdateHash: %v", err)
		}
	}
	for _, r := range runs {
		if err := d.UpdateHash(ctx, r.seq, data[2500:]); err != nil {
			t.Fatalf("UpdateHash: %v", err)
		}
		got, err := d.FinishHash(ctx, r.seq, data[:777])
		if err != nil || !bytes.Equal(got, r.want) {
			t.Fatalf("FinishHash %v = %x, %v; want %x", r.h, got, err, r.want)
		}
	}
	if _, err := d.FinishHash(ctx, runs[0].seq, nil); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("FinishHash twice: %v", err)
	}
	seq, err := d.StartHash(ctx, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AbortHash(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartHash(ctx, crypto.MD5); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("StartHash(MD5) = %v", err)
	}
}

func TestManyKeysShareThreeSlots(t *testing.T) {
	d, _ := openSwtpm(t, Config{})
	ctx := testCtx(t)
	var keys []*Key
	for i := range 6 {
		spec := KeySpec{Type: offload.KeyECDSAP256}
		if i%3 == 2 {
			spec = KeySpec{Type: offload.KeyRSA}
		}
		k, err := d.CreateKey(ctx, spec)
		if err != nil {
			t.Fatalf("CreateKey #%d: %v", i, err)
		}
		keys = append(keys, k)
	}
	digest := sha256.Sum256([]byte("slots"))
	for round := range 2 {
		for i, k := range keys {
			if err := signAndVerify(ctx, d, k, digest[:]); err != nil {
				t.Fatalf("round %d key %d: %v", round, i, err)
			}
		}
	}
	loaded := 0
	for _, o := range d.objects {
		if o.handle != 0 {
			loaded++
		}
	}
	if loaded > 3 {
		t.Fatalf("%d objects loaded at once on a 3-slot TPM", loaded)
	}
}

func signAndVerify(ctx context.Context, d *Device, k *Key, digest []byte) error {
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		r, s, err := d.SignECDSA(ctx, k, crypto.SHA256, digest)
		if err != nil {
			return err
		}
		if !ecdsa.Verify(pub, digest, r, s) {
			return errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		sig, err := d.SignRSA(ctx, k, crypto.SHA256, digest, false)
		if err != nil {
			return err
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	}
	return nil
}

func TestRandomAndCapabilities(t *testing.T) {
	d, _ := openSwtpm(t, Config{})
	ctx := testCtx(t)
	for _, n := range []int{1, 32, 48, 49, 1000} {
		p := make([]byte, n)
		if err := d.Random(ctx, p); err != nil {
			t.Fatalf("Random(%d): %v", n, err)
		}
		if n >= 32 && bytes.Equal(p, make([]byte, n)) {
			t.Fatalf("Random(%d) left zeros", n)
		}
	}
	c, err := d.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capabilities: %+v", c)
	for _, a := range []offload.Algorithm{offload.ECDSAP256, offload.ECDSAP384, offload.RSAPKCS1v15, offload.RSAPSS,
		offload.RSAOAEP, offload.RSAPKCS1v15Decrypt, offload.SHA256, offload.SHA384, offload.SHA512, offload.Random} {
		if !(offload.Info{Algorithms: c.Algorithms}).Supports(a) {
			t.Errorf("swtpm lacks %v", a)
		}
	}
	if fmt.Sprint(c.RSABits) != "[2048 3072]" || c.InputBuffer != 1024 || c.ObjectSlots < 3 || c.Manufacturer == "" {
		t.Errorf("capabilities = %+v", c)
	}
}

// recorder is a TCP connection to swtpm that keeps every byte both ways.
type recorder struct {
	net.Conn
	mu  *sync.Mutex
	log *bytes.Buffer
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.log.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.log.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// TestBusCarriesNoSecrets records the bytes on the transport: with the
// session, digests, plaintexts, ciphertexts and random bytes never appear
// in them; without it, they do (so the test can tell).
func TestBusCarriesNoSecrets(t *testing.T) {
	s := swtpm.Start(t)
	for _, enc := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			ctx := testCtx(t)
			var mu sync.Mutex
			var log bytes.Buffer
			d, err := OpenDevice(ctx, Config{NoParameterEncryption: !enc, FlushStale: true, Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
				var dl net.Dialer
				c, err := dl.DialContext(ctx, "tcp", s.Addr)
				if err != nil {
					return nil, err
				}
				return recorder{c, &mu, &log}, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ec, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256, Auth: func(context.Context) ([]byte, error) { return []byte("key password 1234"), nil }})
			if err != nil {
				t.Fatal(err)
			}
			rk, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyRSA})
			if err != nil {
				t.Fatal(err)
			}
			digest := sha512.Sum384([]byte("what the bus must not see"))
			if _, _, err := d.SignECDSA(ctx, ec, crypto.SHA384, digest[:]); err != nil {
				t.Fatal(err)
			}
			plain := []byte("plaintext the bus must not see!!")
			c, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, rk.Public().(*rsa.PublicKey), plain, nil)
			if got, err := d.RSADecrypt(ctx, rk, c, DecryptScheme{OAEP: true, Hash: crypto.SHA256}); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("RSADecrypt: %v", err)
			}
			random := make([]byte, 48)
			if err := d.Random(ctx, random); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			bus := bytes.Clone(log.Bytes())
			mu.Unlock()
			secrets := map[string][]byte{"digest": digest[:], "plaintext": plain, "ciphertext": c, "random": random, "key auth": []byte("key password 1234")}
			for name, v := range secrets {
				seen := bytes.Contains(bus, v[:16])
				if enc && seen {
					t.Errorf("the %s crossed the bus in clear", name)
				}
				if !enc && !seen && name != "key auth" {
					t.Errorf("without the session the %s should be on the bus: the recorder sees nothing", name)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	d, _ := openSwtpm(t, Config{}, func(s *swtpm.TPM) {
		dir := t.TempDir()
		s.Tool(t, dir, "tpm2_createprimary", "-C", "o", "-c", "srk.ctx")
		s.Tool(t, dir, "tpm2_evictcontrol", "-C", "o", "-c", "srk.ctx", "0x81000009")
		s.Tool(t, dir, "tpm2_flushcontext", "-t")
	})
	ctx := testCtx(t)
	ec, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	rk, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyRSA})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(nil)
	for _, tc := range []struct {
		name string
		fn   func() error
		want error
	}{
		{"short digest", func() error { _, _, err := d.SignECDSA(ctx, ec, crypto.SHA256, digest[:31]); return err }, offload.ErrInvalid},
		{"long digest", func() error { _, err := d.SignRSA(ctx, rk, crypto.SHA256, append(digest[:], 0), false); return err }, offload.ErrInvalid},
		{"ECDSA with RSA key", func() error { _, _, err := d.SignECDSA(ctx, rk, crypto.SHA256, digest[:]); return err }, errWrongKey},
		{"RSA with ECDSA key", func() error { _, err := d.SignRSA(ctx, ec, crypto.SHA256, digest[:], true); return err }, errWrongKey},
		{"decrypt with ECDSA key", func() error { _, err := d.RSARaw(ctx, ec, make([]byte, 256)); return err }, errWrongKey},
		{"ciphertext too short", func() error { _, err := d.RSADecrypt(ctx, rk, make([]byte, 255), DecryptScheme{}); return err }, offload.ErrInvalid},
		{"ciphertext too long", func() error { _, err := d.RSARaw(ctx, rk, make([]byte, 257)); return err }, offload.ErrInvalid},
		{"ciphertext of garbage", func() error {
			_, err := d.RSADecrypt(ctx, rk, bytes.Repeat([]byte{0x42}, 256), DecryptScheme{OAEP: true, Hash: crypto.SHA256})
			return err
		}, rsa.ErrDecryption},
		{"ciphertext above the modulus", func() error { _, err := d.RSARaw(ctx, rk, bytes.Repeat([]byte{0xff}, 256)); return err }, offload.ErrInvalid},
		{"MD5", func() error { _, _, err := d.SignECDSA(ctx, ec, crypto.MD5, digest[:16]); return err }, offload.ErrUnsupported},
		{"RSA-4096", func() error { _, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyRSA, Bits: 4096}); return err }, offload.ErrUnsupported},
		{"Ed25519", func() error { _, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyEd25519}); return err }, offload.ErrUnsupported},
		{"empty persistent handle", func() error { _, err := d.PersistentKey(ctx, 0x81000123, nil); return err }, offload.ErrNotFound},
		{"not a persistent handle", func() error { _, err := d.PersistentKey(ctx, 0x80000001, nil); return err }, offload.ErrInvalid},
		{"persistent storage key", func() error { _, err := d.PersistentKey(ctx, 0x81000009, nil); return err }, errWrongKey},
		{"malformed key file", func() error {
			_, err := d.LoadKeyFile(ctx, []byte("-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n"), nil)
			return err
		}, offload.ErrInvalid},
		{"not PEM", func() error { _, err := d.LoadKeyFile(ctx, []byte("hello"), nil); return err }, offload.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// The device still works and holds no more than it did.
	if err := signAndVerify(ctx, d, ec, digest[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := d.handles(ctx, tpm2.TPMHandle(0x80000000)); err != nil {
		t.Fatal(err)
	}
}
