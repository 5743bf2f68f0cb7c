package offload

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha256" // register SHA-224/256 for crypto.Hash.Available
	_ "crypto/sha512"
	"errors"
	"testing"
)

func TestSignRequestCheck(t *testing.T) {
	key := func(t KeyType) *Key { return NewKey(nil, t, 0, nil, nil) }
	d32 := make([]byte, 32)
	d48 := make([]byte, 48)
	d64 := make([]byte, 64)
	pss := &rsa.PSSOptions{Hash: crypto.SHA256}
	tests := []struct {
		name string
		req  SignRequest
		want Algorithm // 0: fails with ErrInvalid
	}{
		{"nil key", SignRequest{Digest: d32, Opts: crypto.SHA256}, 0},
		{"both digest and message", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Message: []byte("m"), Opts: crypto.SHA256}, 0},
		{"wrong digest length", SignRequest{Key: key(KeyECDSAP256), Digest: d48, Opts: crypto.SHA256}, 0},
		{"short digest", SignRequest{Key: key(KeyRSA), Digest: d32[:31], Opts: crypto.SHA256}, 0},
		{"unknown hash", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: crypto.Hash(99)}, 0},
		{"unavailable hash", SignRequest{Key: key(KeyRSA), Digest: make([]byte, 16), Opts: crypto.MD4}, 0},
		{"ecdsa zero hash", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Opts: crypto.Hash(0)}, 0},
		{"ecdsa nil opts", SignRequest{Key: key(KeyECDSAP384), Digest: d48}, 0},
		{"pss on ecdsa", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Opts: pss}, 0},
		{"pss on ed25519", SignRequest{Key: key(KeyEd25519), Message: []byte("m"), Opts: pss}, 0},
		{"pss zero hash", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{}}, 0},
		{"ed25519 opts on rsa", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &ed25519.Options{Hash: crypto.SHA256}}, 0},
		{"ed25519 opts on ed448", SignRequest{Key: key(KeyEd448), Message: []byte("m"), Opts: &ed25519.Options{}}, 0},
		{"ed25519 with sha256", SignRequest{Key: key(KeyEd25519), Digest: d32, Opts: crypto.SHA256}, 0},
		{"mldsa with a hash", SignRequest{Key: key(KeyMLDSA65), Digest: d32, Opts: crypto.SHA256}, 0},
		{"aes cannot sign", SignRequest{Key: key(KeyAES), Digest: d32, Opts: crypto.SHA256}, 0},
		{"unknown key type", SignRequest{Key: key(KeyType(77)), Digest: d32, Opts: crypto.SHA256}, 0},

		{"p256", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Opts: crypto.SHA256}, ECDSAP256},
		{"p384 message", SignRequest{Key: key(KeyECDSAP384), Message: []byte("hello"), Opts: crypto.SHA384}, ECDSAP384},
		{"p521", SignRequest{Key: key(KeyECDSAP521), Digest: d64, Opts: crypto.SHA512}, ECDSAP521},
		{"rsa pkcs1", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: crypto.SHA256}, RSAPKCS1v15},
		{"rsa pkcs1 raw", SignRequest{Key: key(KeyRSA), Digest: []byte("raw"), Opts: crypto.Hash(0)}, RSAPKCS1v15},
		{"rsa pss", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: pss}, RSAPSS},
		{"ed25519", SignRequest{Key: key(KeyEd25519), Message: []byte("m")}, Ed25519},
		{"ed25519 opts", SignRequest{Key: key(KeyEd25519), Digest: []byte("m"), Opts: &ed25519.Options{}}, Ed25519},
		{"ed25519ph", SignRequest{Key: key(KeyEd25519), Digest: d64, Opts: &ed25519.Options{Hash: crypto.SHA512}}, Ed25519ph},
		{"ed25519ph hash", SignRequest{Key: key(KeyEd25519), Digest: d64, Opts: crypto.SHA512}, Ed25519ph},
		{"ed25519ctx", SignRequest{Key: key(KeyEd25519), Message: []byte("m"), Opts: &ed25519.Options{Context: "c"}}, Ed25519ctx},
		{"ed448", SignRequest{Key: key(KeyEd448), Message: []byte("m")}, Ed448},
		{"mldsa44", SignRequest{Key: key(KeyMLDSA44), Message: []byte("m")}, MLDSA44},
		{"mldsa65 opts", SignRequest{Key: key(KeyMLDSA65), Message: []byte("m"), Opts: &MLDSAOptions{Context: []byte("c")}}, MLDSA65},
		{"mldsa87", SignRequest{Key: key(KeyMLDSA87), Digest: []byte("m")}, MLDSA87},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.req.Check()
			if tc.want == 0 {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Check = %v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Check = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestSignRequestInput(t *testing.T) {
	r := SignRequest{Digest: []byte("d")}
	if string(r.Input()) != "d" {
		t.Fatal("Input ignores Digest")
	}
	r = SignRequest{Message: []byte("m")}
	if string(r.Input()) != "m" {
		t.Fatal("Input ignores Message")
	}
}

func TestDecryptRequestCheck(t *testing.T) {
	rsaKey := NewKey(nil, KeyRSA, 2048, nil, nil)
	ct := []byte{1, 2, 3}
	tests := []struct {
		name string
		req  DecryptRequest
		want Algorithm
	}{
		{"nil key", DecryptRequest{Ciphertext: ct}, 0},
		{"ecdsa key", DecryptRequest{Key: NewKey(nil, KeyECDSAP256, 256, nil, nil), Ciphertext: ct}, 0},
		{"empty ciphertext", DecryptRequest{Key: rsaKey}, 0},
		{"oaep unknown hash", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.OAEPOptions{Hash: crypto.Hash(99)}}, 0},
		{"oaep unknown mgf hash", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.Hash(99)}}, 0},
		{"wrong opts type", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: crypto.SHA256}, 0},
		{"pkcs1 nil opts", DecryptRequest{Key: rsaKey, Ciphertext: ct}, RSAPKCS1v15Decrypt},
		{"pkcs1 opts", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 16}}, RSAPKCS1v15Decrypt},
		{"oaep", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.OAEPOptions{Hash: crypto.SHA256}}, RSAOAEP},
		{"oaep mgf", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA512}}, RSAOAEP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.req.Check()
			if tc.want == 0 {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Check = %v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Check = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestHashAndCipherRequestCheck(t *testing.T) {
	for h, want := range map[crypto.Hash]Algorithm{crypto.SHA224: SHA224, crypto.SHA256: SHA256, crypto.SHA384: SHA384, crypto.SHA512: SHA512} {
		if got, err := (&HashRequest{Hash: h}).Check(); err != nil || got != want {
			t.Errorf("HashRequest{%v}.Check() = %v, %v", h, got, err)
		}
	}
	for _, h := range []crypto.Hash{0, crypto.SHA1, crypto.SHA3_256} {
		if _, err := (&HashRequest{Hash: h}).Check(); !errors.Is(err, ErrUnsupported) {
			t.Errorf("HashRequest{%v}.Check() = %v, want ErrUnsupported", h, err)
		}
	}
	aes := NewKey(nil, KeyAES, 128, nil, nil)
	for m, want := range map[CipherMode]Algorithm{ModeGCM: AESGCM, ModeCBC: AESCBC, ModeCTR: AESCTR} {
		if got, err := (&CipherRequest{Key: aes, Mode: m}).Check(); err != nil || got != want {
			t.Errorf("CipherRequest{%v}.Check() = %v, %v", m, got, err)
		}
	}
	if _, err := (&CipherRequest{Key: aes, Mode: 9}).Check(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown mode: %v", err)
	}
	if _, err := (&CipherRequest{Mode: ModeGCM}).Check(); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil key: %v", err)
	}
	if _, err := (&CipherRequest{Key: NewKey(nil, KeyRSA, 2048, nil, nil), Mode: ModeGCM}).Check(); !errors.Is(err, ErrInvalid) {
		t.Errorf("rsa key: %v", err)
	}
}

func TestKeyAccessors(t *testing.T) {
	pub := ed25519.PublicKey(make([]byte, 32))
	k := NewKey(nil, KeyEd25519, 256, pub, "h")
	if k.Type() != KeyEd25519 || k.Bits() != 256 || k.Handle() != "h" || k.Engine() != nil {
		t.Fatalf("accessors: %v %v %v %v", k.Type(), k.Bits(), k.Handle(), k.Engine())
	}
	if _, ok := k.Public().(ed25519.PublicKey); !ok {
		t.Fatalf("Public() = %T", k.Public())
	}
}
