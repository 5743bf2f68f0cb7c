package soft

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/offcrypt/offcrypt/offload"
)

// rsa4096 reads the test's 4096-bit key: slow enough to sign that a short
// deadline ends during the work, and made once, by openssl, not per run.
func rsa4096(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/rsa4096.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("testdata/rsa4096.pem: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// A signature worked out on the caller's goroutine whose context ends
// meanwhile: the work is not interrupted, but the caller gets the context's
// error when it ends, never the late signature, and Stats count a failure.
// A deadline of 1 ms against an RSA-4096 signature of several ms ends
// during the work unless its timer fires late; a few tries absorb that.
func TestInlineContextEnds(t *testing.T) {
	e := newEngine(t, Options{})
	priv := rsa4096(t)
	key := mustImport(t, e, priv)
	digest := hashOf(crypto.SHA256, []byte("signed too late"))
	req := &offload.SignRequest{Call: offload.Call{Inline: true}, Key: key, Digest: digest, Opts: crypto.SHA256}
	const tries = 5
	for i := range tries {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		before := e.Stats().Op(offload.OpSign)
		sig, err := e.Sign(ctx, req).Poll()
		cancel()
		after := e.Stats().Op(offload.OpSign)
		switch {
		case errors.Is(err, offload.ErrNotReady):
			t.Fatal("an inline request was not done on the caller's goroutine")
		case after.Submitted != before.Submitted+1:
			t.Logf("try %d: the context ended before the work began", i)
			continue
		case err == nil:
			if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, digest, sig); err != nil {
				t.Fatalf("try %d: a delivered signature does not verify: %v", i, err)
			}
			t.Logf("try %d: the deadline's timer fired after the signature was done", i)
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) || sig != nil {
			t.Fatalf("Sign = %x, %v; want no signature and context.DeadlineExceeded", sig, err)
		}
		var oe *offload.OpError
		if !errors.As(err, &oe) || oe.Engine != Name || oe.Op != offload.OpSign {
			t.Fatalf("err = %#v, want an *offload.OpError for soft sign", err)
		}
		if after.Failed != before.Failed+1 || after.Completed != before.Completed || after.InFlight != 0 {
			t.Fatalf("stats before %+v, after %+v: want one more failure and nothing in flight", before, after)
		}
		return
	}
	t.Fatalf("%d RSA-4096 signatures with a 1 ms deadline: none failed with the context's error", tries)
}
