package offload

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // register SHA-1 and SHA-2 for crypto.Hash.Available
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"testing"
)

func TestSignRequestCheck(t *testing.T) {
	key := func(t KeyType) *Key { return NewKey(nil, t, 2048, nil, nil) }
	d32 := make([]byte, 32)
	d48 := make([]byte, 48)
	d64 := make([]byte, 64)
	pss := &rsa.PSSOptions{Hash: crypto.SHA256}
	tests := []struct {
		name string
		req  SignRequest
		want Algorithm // 0: fails with ErrInvalid
		// The parameters Check resolves besides the algorithm; Hash is
		// always checked against the options' HashFunc.
		salt    int
		context string
		det     bool
	}{
		{"nil key", SignRequest{Digest: d32, Opts: crypto.SHA256}, 0, 0, "", false},
		{"both digest and message", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Message: []byte("m"), Opts: crypto.SHA256}, 0, 0, "", false},
		{"wrong digest length", SignRequest{Key: key(KeyECDSAP256), Digest: d48, Opts: crypto.SHA256}, 0, 0, "", false},
		{"short digest", SignRequest{Key: key(KeyRSA), Digest: d32[:31], Opts: crypto.SHA256}, 0, 0, "", false},
		{"unknown hash", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: crypto.Hash(99)}, 0, 0, "", false},
		{"unavailable hash", SignRequest{Key: key(KeyRSA), Digest: make([]byte, 16), Opts: crypto.MD4}, 0, 0, "", false},
		{"ecdsa zero hash", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Opts: crypto.Hash(0)}, 0, 0, "", false},
		{"ecdsa nil opts", SignRequest{Key: key(KeyECDSAP384), Digest: d48}, 0, 0, "", false},
		{"pss on ecdsa", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Opts: pss}, 0, 0, "", false},
		{"pss on ed25519", SignRequest{Key: key(KeyEd25519), Message: []byte("m"), Opts: pss}, 0, 0, "", false},
		{"pss zero hash", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{}}, 0, 0, "", false},
		{"ed25519 opts on rsa", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &ed25519.Options{Hash: crypto.SHA256}}, 0, 0, "", false},
		{"ed25519 opts on ed448", SignRequest{Key: key(KeyEd448), Message: []byte("m"), Opts: &ed25519.Options{}}, 0, 0, "", false},
		{"ed25519 with sha256", SignRequest{Key: key(KeyEd25519), Digest: d32, Opts: crypto.SHA256}, 0, 0, "", false},
		{"mldsa with a hash", SignRequest{Key: key(KeyMLDSA65), Digest: d32, Opts: crypto.SHA256}, 0, 0, "", false},
		{"aes cannot sign", SignRequest{Key: key(KeyAES), Digest: d32, Opts: crypto.SHA256}, 0, 0, "", false},
		{"unknown key type", SignRequest{Key: key(KeyType(77)), Digest: d32, Opts: crypto.SHA256}, 0, 0, "", false},

		{"p256", SignRequest{Key: key(KeyECDSAP256), Digest: d32, Opts: crypto.SHA256}, ECDSAP256, 0, "", false},
		{"p384 message", SignRequest{Key: key(KeyECDSAP384), Message: []byte("hello"), Opts: crypto.SHA384}, ECDSAP384, 0, "", false},
		{"p521", SignRequest{Key: key(KeyECDSAP521), Digest: d64, Opts: crypto.SHA512}, ECDSAP521, 0, "", false},
		{"rsa pkcs1", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: crypto.SHA256}, RSAPKCS1v15, 0, "", false},
		{"rsa pkcs1 raw", SignRequest{Key: key(KeyRSA), Digest: []byte("raw"), Opts: crypto.Hash(0)}, RSAPKCS1v15, 0, "", false},
		{"rsa pss", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: pss}, RSAPSS, 222, "", false},
		{"ed25519", SignRequest{Key: key(KeyEd25519), Message: []byte("m")}, Ed25519, 0, "", false},
		{"ed25519 opts", SignRequest{Key: key(KeyEd25519), Digest: []byte("m"), Opts: &ed25519.Options{}}, Ed25519, 0, "", false},
		{"ed25519ph", SignRequest{Key: key(KeyEd25519), Digest: d64, Opts: &ed25519.Options{Hash: crypto.SHA512}}, Ed25519ph, 0, "", false},
		{"ed25519ph hash", SignRequest{Key: key(KeyEd25519), Digest: d64, Opts: crypto.SHA512}, Ed25519ph, 0, "", false},
		{"ed25519ctx", SignRequest{Key: key(KeyEd25519), Message: []byte("m"), Opts: &ed25519.Options{Context: "c"}}, Ed25519ctx, 0, "c", false},
		{"ed448", SignRequest{Key: key(KeyEd448), Message: []byte("m")}, Ed448, 0, "", false},
		{"mldsa44", SignRequest{Key: key(KeyMLDSA44), Message: []byte("m")}, MLDSA44, 0, "", false},
		{"mldsa65 opts", SignRequest{Key: key(KeyMLDSA65), Message: []byte("m"), Opts: &MLDSAOptions{Context: []byte("c")}}, MLDSA65, 0, "c", false},
		{"mldsa87", SignRequest{Key: key(KeyMLDSA87), Digest: []byte("m")}, MLDSA87, 0, "", false},
		{"mldsa deterministic", SignRequest{Key: key(KeyMLDSA44), Message: []byte("m"), Opts: &MLDSAOptions{Deterministic: true}}, MLDSA44, 0, "", true},
		{"mldsa context too long", SignRequest{Key: key(KeyMLDSA44), Message: []byte("m"), Opts: &MLDSAOptions{Context: make([]byte, 256)}}, 0, 0, "", false},
		{"ed25519 context too long", SignRequest{Key: key(KeyEd25519), Message: []byte("m"), Opts: &ed25519.Options{Context: string(make([]byte, 256))}}, 0, 0, "", false},
		{"ed25519ph context", SignRequest{Key: key(KeyEd25519), Digest: d64, Opts: &ed25519.Options{Hash: crypto.SHA512, Context: "c"}}, Ed25519ph, 0, "c", false},
		{"pss auto", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{Hash: crypto.SHA256}}, RSAPSS, 256 - 2 - 32, "", false},
		{"pss equals hash", SignRequest{Key: key(KeyRSA), Digest: d64, Opts: &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: rsa.PSSSaltLengthEqualsHash}}, RSAPSS, 64, "", false},
		{"pss explicit", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 20}}, RSAPSS, 20, "", false},
		{"pss longest salt", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 222}}, RSAPSS, 222, "", false},
		{"pss salt too long", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: 223}}, 0, 0, "", false},
		{"pss negative salt", SignRequest{Key: key(KeyRSA), Digest: d32, Opts: &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: -2}}, 0, 0, "", false},
		{"pss modulus too small", SignRequest{Key: NewKey(nil, KeyRSA, 512, nil, nil), Digest: d64, Opts: &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: rsa.PSSSaltLengthEqualsHash}}, 0, 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.req.Check()
			if tc.want == 0 {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Check = %+v, %v; want ErrInvalid", got, err)
				}
				return
			}
			want := SignParams{Alg: tc.want, Hash: tc.req.hashFunc(), SaltLength: tc.salt, Deterministic: tc.det}
			if err != nil || got.Alg != want.Alg || got.Hash != want.Hash || got.SaltLength != want.SaltLength ||
				string(got.Context) != tc.context || got.Deterministic != want.Deterministic {
				t.Fatalf("Check = %+v, %v; want %+v with context %q", got, err, want, tc.context)
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
	n := new(big.Int).Lsh(big.NewInt(1), 2047)
	withPub := NewKey(nil, KeyRSA, 2048, &rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: 65537}, nil)
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
		{"oaep mgf", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA512, Label: []byte("l")}}, RSAOAEP},
		{"oaep nil", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: (*rsa.OAEPOptions)(nil)}, 0},
		{"pkcs1 nil pointer", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: (*rsa.PKCS1v15DecryptOptions)(nil)}, RSAPKCS1v15Decrypt},
		{"ciphertext longer than the modulus", DecryptRequest{Key: rsaKey, Ciphertext: make([]byte, 257)}, 0},
		{"ciphertext above the modulus", DecryptRequest{Key: withPub, Ciphertext: bytes.Repeat([]byte{0xff}, 256)}, 0},
		{"ciphertext equal to the modulus", DecryptRequest{Key: withPub, Ciphertext: n.Bytes()}, 0},
		{"ciphertext below the modulus", DecryptRequest{Key: withPub, Ciphertext: append([]byte{0x80}, make([]byte, 255)...)}, RSAPKCS1v15Decrypt},
		{"longest session key", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 256 - 11}}, RSAPKCS1v15Decrypt},
		{"session key too long", DecryptRequest{Key: rsaKey, Ciphertext: ct, Opts: &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 256 - 10}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.req.Check()
			if tc.want == 0 {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Check = %+v, %v; want ErrInvalid", got, err)
				}
				return
			}
			var want DecryptParams
			switch o := tc.req.Opts.(type) {
			case *rsa.OAEPOptions:
				want = DecryptParams{Hash: o.Hash, MGFHash: o.MGFHash, Label: o.Label}
				if want.MGFHash == 0 {
					want.MGFHash = o.Hash
				}
			case *rsa.PKCS1v15DecryptOptions:
				if o != nil {
					want.SessionKeyLen = o.SessionKeyLen
				}
			}
			want.Alg = tc.want
			if err != nil || got.Alg != want.Alg || got.Hash != want.Hash || got.MGFHash != want.MGFHash ||
				string(got.Label) != string(want.Label) || got.SessionKeyLen != want.SessionKeyLen {
				t.Fatalf("Check = %+v, %v; want %+v", got, err, want)
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

// TestPSSSaltLength checks the resolution against rsa.SignPSS itself: a
// salt length it resolves is the one crypto/rsa's signature carries (an
// explicit verification with it passes), and it fails exactly where
// crypto/rsa fails, with rsa.ErrMessageTooLong.
func TestPSSSaltLength(t *testing.T) {
	t.Setenv("GODEBUG", "rsa1024min=0") // small moduli reach the too-small cases
	for _, bits := range []int{512, 520, 521, 1024, 1025, 1031} {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA512} {
			d := make([]byte, h.Size())
			for _, opt := range []int{rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash, -2, 1, 20, bits/8 - h.Size() - 2, bits/8 - h.Size() - 1} {
				got, err := PSSSaltLength(bits, h, opt)
				sig, rsaErr := rsa.SignPSS(rand.Reader, priv, h, d, &rsa.PSSOptions{SaltLength: opt})
				if (err == nil) != (rsaErr == nil) {
					t.Fatalf("%d bits, %v, salt %d: PSSSaltLength = %d, %v; rsa.SignPSS: %v", bits, h, opt, got, err, rsaErr)
				}
				if err != nil {
					if !errors.Is(err, ErrInvalid) || errors.Is(rsaErr, rsa.ErrMessageTooLong) != errors.Is(err, rsa.ErrMessageTooLong) {
						t.Fatalf("%d bits, %v, salt %d: PSSSaltLength error %v; rsa.SignPSS error %v", bits, h, opt, err, rsaErr)
					}
					continue
				}
				if got == rsa.PSSSaltLengthAuto && opt != rsa.PSSSaltLengthAuto {
					continue // an explicit zero salt cannot be told to VerifyPSS
				}
				if got == 0 {
					t.Fatalf("%d bits, %v, salt %d: resolved to 0", bits, h, opt)
				}
				if err := rsa.VerifyPSS(&priv.PublicKey, h, d, sig, &rsa.PSSOptions{SaltLength: got}); err != nil {
					t.Fatalf("%d bits, %v, salt %d: crypto/rsa's signature does not carry a %d-byte salt: %v", bits, h, opt, got, err)
				}
			}
		}
	}
}

func TestKeyTypeOf(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	r, _ := rsa.GenerateKey(rand.Reader, 1024)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		pub  crypto.PublicKey
		typ  KeyType
		bits int
		err  error
	}{
		{"p256", &p256.PublicKey, KeyECDSAP256, 256, nil},
		{"p384", &p384.PublicKey, KeyECDSAP384, 384, nil},
		{"p521", &p521.PublicKey, KeyECDSAP521, 521, nil},
		{"rsa", &r.PublicKey, KeyRSA, 1024, nil},
		{"ed25519", ed, KeyEd25519, 256, nil},
		{"p224", &p224.PublicKey, 0, 0, ErrUnsupported},
		{"ecdsa by value", p256.PublicKey, 0, 0, ErrUnsupported},
		{"nil", nil, 0, 0, ErrUnsupported},
		{"nil ecdsa", (*ecdsa.PublicKey)(nil), 0, 0, ErrInvalid},
		{"ecdsa without curve", &ecdsa.PublicKey{}, 0, 0, ErrInvalid},
		{"nil rsa", (*rsa.PublicKey)(nil), 0, 0, ErrInvalid},
		{"rsa without modulus", &rsa.PublicKey{E: 65537}, 0, 0, ErrInvalid},
		{"short ed25519", ed[:31], 0, 0, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, bits, err := KeyTypeOf(tc.pub)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("KeyTypeOf = %v, %d, %v; want %v", typ, bits, err, tc.err)
				}
				return
			}
			if err != nil || typ != tc.typ || bits != tc.bits {
				t.Fatalf("KeyTypeOf = %v, %d, %v; want %v, %d", typ, bits, err, tc.typ, tc.bits)
			}
		})
	}
}

func TestRandomRequestCheck(t *testing.T) {
	for _, tc := range []struct {
		req   *RandomRequest
		empty bool
		err   error
	}{
		{&RandomRequest{N: 0}, true, nil},
		{&RandomRequest{N: 1}, false, nil},
		{&RandomRequest{N: 64}, false, nil},
		{&RandomRequest{N: 65}, false, ErrInvalid},
		{&RandomRequest{N: -1}, false, ErrInvalid},
		{nil, false, ErrInvalid},
	} {
		empty, err := tc.req.Check(64)
		if empty != tc.empty || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("Check(%+v) = %v, %v; want %v, %v", tc.req, empty, err, tc.empty, tc.err)
		}
	}
}

type namedHandle string

func (h namedHandle) Name() string { return string(h) }

// TestKeyString: a Key describes itself by engine, type, size and the
// engine's name for it, and shows nothing else of its handle.
func TestKeyString(t *testing.T) {
	secret := struct{ d []byte }{[]byte("do not print")}
	for _, tt := range []struct {
		key  *Key
		want string
	}{
		{NewKey(nil, KeyECDSAP256, 256, nil, secret), "ECDSA-P256 key"},
		{NewKey(nil, KeyRSA, 3072, nil, nil), "RSA-3072 key"},
		{NewKey(nil, KeyAES, 128, nil, namedHandle("pkcs11:object=k;type=secret-key")), `AES-128 key "pkcs11:object=k;type=secret-key"`},
		{NewKey(nil, KeyEd25519, 256, nil, namedHandle("")), "Ed25519 key"},
		{nil, "<nil offload.Key>"},
	} {
		if got := fmt.Sprint(tt.key); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
