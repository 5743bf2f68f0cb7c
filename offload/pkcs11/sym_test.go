//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/offcrypt/offcrypt/internal/gcmauth"
	"github.com/offcrypt/offcrypt/offload"
)

// knownAESKey puts raw on the token as a session AES key (the engine has no
// import; the test needs a key whose value it knows) and returns it.
func knownAESKey(t *testing.T, e *Engine, raw []byte) *offload.Key {
	t.Helper()
	id := make([]byte, 8)
	rand.Read(id)
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "known-aes"),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, raw),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	}
	k, err := submit(e, context.Background(), offload.OpSign, false, offload.Call{}, func(w *worker) (*offload.Key, error) {
		obj, err := w.p.CreateObject(w.sh, tmpl)
		if err != nil {
			return nil, ckErr("C_CreateObject", err)
		}
		return e.loadKey(w, obj, pkcs11.CKO_SECRET_KEY)
	}).Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCipherKnownKey(t *testing.T) {
	e := openEngine(t, 1)
	for _, a := range []offload.Algorithm{offload.AESGCM, offload.AESCBC, offload.AESCTR} {
		if !e.Info().Supports(a) {
			t.Fatalf("SoftHSM lists %v, Info does not claim it", a)
		}
	}
	for _, size := range []int{16, 32} {
		raw := make([]byte, size)
		rand.Read(raw)
		k := knownAESKey(t, e, raw)
		block, _ := aes.NewCipher(raw)
		gcm, _ := stdcipher.NewGCM(block)
		iv := make([]byte, 16)
		rand.Read(iv)
		iv[15], iv[14] = 0xff, 0xff // the counter carries across bytes
		pt := make([]byte, 100)
		rand.Read(pt)
		aad := []byte("aad")
		want := map[offload.CipherMode][]byte{}
		want[offload.ModeGCM] = gcm.Seal(nil, iv[:12], pt, aad)
		cbc := make([]byte, 96)
		stdcipher.NewCBCEncrypter(block, iv).CryptBlocks(cbc, pt[:96])
		want[offload.ModeCBC] = cbc
		ctr := make([]byte, len(pt))
		stdcipher.NewCTR(block, iv).XORKeyStream(ctr, pt)
		want[offload.ModeCTR] = ctr
		for _, mode := range []offload.CipherMode{offload.ModeGCM, offload.ModeCBC, offload.ModeCTR} {
			t.Run(mode.String(), func(t *testing.T) {
				req := offload.CipherRequest{Key: k, Mode: mode, IV: iv, Input: pt}
				plain := pt
				switch mode {
				case offload.ModeGCM:
					req.IV, req.AAD = iv[:12], aad
				case offload.ModeCBC:
					req.Input, plain = pt[:96], pt[:96]
				}
				out := make([]byte, 0, 256)
				req.Out = out
				ct, err := wait(t, e.Cipher(context.Background(), &req))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ct, want[mode]) {
					t.Fatalf("%v with %d-byte key differs from crypto/cipher", mode, size)
				}
				if &ct[0] == &out[:1][0] || !bytes.Equal(out[:cap(out)], make([]byte, cap(out))) {
					t.Fatal("the engine wrote into req.Out")
				}
				req.Decrypt, req.Input, req.Out = true, ct, nil
				got, err := wait(t, e.Cipher(context.Background(), &req))
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("decrypt: %v", err)
				}
			})
		}
	}
}

func TestCipherErrors(t *testing.T) {
	e, _ := sharedEngine(t)
	k, err := e.GenerateKey(context.Background(), offload.KeyAES, 128)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := e.FindKey(context.Background(), "pkcs11:object=ec256")
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 16)
	ct, err := wait(t, e.Cipher(context.Background(), &offload.CipherRequest{Key: k, Mode: offload.ModeGCM, IV: iv[:12], Input: []byte("hello")}))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(ct)
	tampered[0] ^= 1
	// An authentication failure reads as crypto/cipher's Open error, which
	// the cipher adapter reports as its ErrOpen (its own tests check that).
	for _, tt := range []struct {
		name string
		req  offload.CipherRequest
		want error
	}{
		{"gcm-tampered", offload.CipherRequest{Key: k, Mode: offload.ModeGCM, Decrypt: true, IV: iv[:12], Input: tampered}, gcmauth.ErrOpen},
		{"gcm-short", offload.CipherRequest{Key: k, Mode: offload.ModeGCM, Decrypt: true, IV: iv[:12], Input: ct[:15]}, gcmauth.ErrOpen},
		{"gcm-no-nonce", offload.CipherRequest{Key: k, Mode: offload.ModeGCM, Input: ct}, offload.ErrInvalid},
		{"cbc-partial", offload.CipherRequest{Key: k, Mode: offload.ModeCBC, IV: iv, Input: make([]byte, 17)}, offload.ErrInvalid},
		{"cbc-iv", offload.CipherRequest{Key: k, Mode: offload.ModeCBC, IV: iv[:8], Input: make([]byte, 16)}, offload.ErrInvalid},
		{"ctr-iv", offload.CipherRequest{Key: k, Mode: offload.ModeCTR, IV: iv[:12], Input: make([]byte, 16)}, offload.ErrInvalid},
		{"too-long", offload.CipherRequest{Key: k, Mode: offload.ModeCTR, IV: iv, Input: make([]byte, 32<<10+1)}, offload.ErrInvalid},
		{"not-aes", offload.CipherRequest{Key: ecKey, Mode: offload.ModeCTR, IV: iv, Input: make([]byte, 16)}, offload.ErrInvalid},
		{"mode", offload.CipherRequest{Key: k, Mode: 9, IV: iv, Input: make([]byte, 16)}, offload.ErrUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wait(t, e.Cipher(context.Background(), &tt.req))
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
		})
	}
}

func TestDigest(t *testing.T) {
	e, _ := sharedEngine(t)
	msg := bytes.Repeat([]byte("offcrypt"), 100)
	s224, s256 := sha256.Sum224(msg), sha256.Sum256(msg)
	s384, s512 := sha512.Sum384(msg), sha512.Sum512(msg)
	for _, tt := range []struct {
		h    crypto.Hash
		want []byte
	}{{crypto.SHA224, s224[:]}, {crypto.SHA256, s256[:]}, {crypto.SHA384, s384[:]}, {crypto.SHA512, s512[:]}} {
		t.Run(tt.h.String(), func(t *testing.T) {
			got, err := wait(t, e.Digest(context.Background(), tt.h, msg))
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("%x, %v", got, err)
			}
		})
	}
	if _, err := wait(t, e.Digest(context.Background(), crypto.SHA3_256, msg)); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("SHA3: %v", err)
	}
	if _, err := wait(t, e.Digest(context.Background(), crypto.SHA256, make([]byte, 32<<10+1))); !errors.Is(err, offload.ErrInvalid) {
		t.Fatalf("too long: %v", err)
	}
	// Hash requests carry state a token cannot take: refused. Info claims
	// the hashes all the same, served by HashSession.
	if _, err := wait(t, e.Hash(context.Background(), &offload.HashRequest{Hash: crypto.SHA256, Final: true})); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("Hash: %v", err)
	}
	for _, a := range []offload.Algorithm{offload.SHA224, offload.SHA256, offload.SHA384, offload.SHA512} {
		if !e.Info().Supports(a) {
			t.Errorf("Info does not claim %v", a)
		}
	}
}
