package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/offcrypt/offcrypt/internal/swtpm"
	"github.com/offcrypt/offcrypt/offload"
)

// TestPersistentSRK opens with the SRK at a persistent handle made by
// tpm2-tools; key files then name that handle as their parent.
func TestPersistentSRK(t *testing.T) {
	dir := t.TempDir()
	d, _ := openSwtpm(t, Config{SRKHandle: 0x81000001}, func(s *swtpm.TPM) {
		s.Tool(t, dir, "tpm2_createprimary", "-C", "o", "-G", "rsa2048", "-c", "srk.ctx")
		s.Tool(t, dir, "tpm2_evictcontrol", "-C", "o", "-c", "srk.ctx", "0x81000001")
		s.Tool(t, dir, "tpm2_flushcontext", "-t")
	})
	ctx := testCtx(t)
	k, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("under a persistent SRK"))
	if err := signAndVerify(ctx, d, k, digest[:]); err != nil {
		t.Fatal(err)
	}
	pemBytes, err := k.KeyFile()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := d.LoadKeyFile(ctx, pemBytes, nil)
	if err != nil {
		t.Fatalf("own key file: %v", err)
	}
	if k2.parent != 0x81000001 {
		t.Fatalf("key file parent %#x, want 0x81000001", uint32(k2.parent))
	}
	if err := signAndVerify(ctx, d, k2, digest[:]); err != nil {
		t.Fatal(err)
	}
	// A key file whose parent is some other persistent key is refused
	// before anything is loaded.
	if err := d.checkParent(0x81000002); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("foreign parent: %v", err)
	}
	if _, err := OpenDevice(ctx, Config{Address: "127.0.0.1:1", SRKHandle: 0x80000001}); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("SRKHandle not persistent: %v", err)
	}
}

// TestHungTPM: a TPM that takes a command and never answers. The command
// ends with the caller's context, the connection is dropped, and the next
// call dials again.
func TestHungTPM(t *testing.T) {
	dials := 0
	cfg := Config{Dial: func(context.Context) (io.ReadWriteCloser, error) {
		dials++
		ours, theirs := net.Pipe()
		go func() { // reads commands, answers nothing, until closed
			_, _ = io.Copy(io.Discard, theirs)
		}()
		return ours, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := OpenDevice(ctx, cfg)
	if !errors.Is(err, ErrTransport) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open on a hung TPM = %v, want ErrTransport and DeadlineExceeded", err)
	}
	if dials != 1 {
		t.Fatalf("%d dials", dials)
	}
}

// TestNoSlotForKey: another client holds two of the three slots, the SRK
// the third. Making a key needs one more: a clear error, nothing leaked,
// and the device still works for what fits.
func TestNoSlotForKey(t *testing.T) {
	s := swtpm.Start(t)
	ctx := testCtx(t)
	other, err := OpenDevice(ctx, Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256}); err != nil {
		t.Fatal(err)
	}
	// The other client goes away leaving its SRK and its key loaded.
	other.disconnect()

	d, err := OpenDevice(ctx, Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if !errors.Is(err, tpm2.TPMRCObjectMemory) || !strings.Contains(err.Error(), "another client") {
		t.Fatalf("CreateKey with no slot = %v", err)
	}
	if n := len(d.objects); n != 1 {
		t.Fatalf("%d objects tracked after the failure, want the SRK alone", n)
	}
	if err := d.Random(ctx, make([]byte, 16)); err != nil {
		t.Fatalf("Random after the failure: %v", err)
	}
	hs, err := d.handles(ctx, 0x80000000)
	if err != nil || len(hs) != 3 {
		t.Fatalf("transient handles %v, %v; want the other client's two and our SRK", hs, err)
	}
}

// TestECDSAHashSizes signs digests of several hashes with one P-256 key:
// the TPM truncates a longer digest as crypto/ecdsa does.
func TestECDSAHashSizes(t *testing.T) {
	d, _ := openSwtpm(t, Config{})
	ctx := testCtx(t)
	k, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("P-256 with every hash")
	s384, s512 := sha512.Sum384(msg), sha512.Sum512(msg)
	s256 := sha256.Sum256(msg)
	for _, tc := range []struct {
		h      crypto.Hash
		digest []byte
	}{{crypto.SHA256, s256[:]}, {crypto.SHA384, s384[:]}, {crypto.SHA512, s512[:]}} {
		r, s, err := d.SignECDSA(ctx, k, tc.h, tc.digest)
		if err != nil {
			t.Fatalf("%v: %v", tc.h, err)
		}
		if !ecdsa.Verify(k.Public().(*ecdsa.PublicKey), tc.digest, r, s) {
			t.Fatalf("%v: does not verify", tc.h)
		}
	}
}

// TestCloseFlushesEverything: after Close, the TPM holds no transient
// object or session of the device's.
func TestCloseFlushesEverything(t *testing.T) {
	s := swtpm.Start(t)
	ctx := testCtx(t)
	d, err := OpenDevice(ctx, Config{Address: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := d.CreateKey(ctx, KeySpec{Type: offload.KeyECDSAP256}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.StartHash(ctx, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.Random(ctx, make([]byte, 1)); !errors.Is(err, offload.ErrClosed) {
		t.Fatalf("Random after Close: %v", err)
	}
	check, err := OpenDevice(ctx, Config{Address: s.Addr, NoParameterEncryption: true})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	objs, err := check.handles(ctx, 0x80000000)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := check.handles(ctx, 0x02000000)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || len(sess) != 0 { // the checking device's own SRK
		t.Fatalf("after Close the TPM holds objects %v and sessions %v", objs, sess)
	}
}
