package rsapad

import (
	"bytes"
	"crypto"
	_ "crypto/md5" // register the hashes crypto/rsa can sign with
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"sync"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// key2048 is one RSA key for the tests that need any key.
func key2048(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// rawSign is textbook RSA, m^d mod n, standing in for a device's raw RSA:
// it exponentiates an encoding made here.
func rawSign(priv *rsa.PrivateKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	return m.Exp(m, priv.D, priv.N).FillBytes(make([]byte, priv.Size()))
}

// rawDecrypt is the same operation on a ciphertext made by crypto/rsa; ok
// is false when the ciphertext is not below the modulus, which an engine
// refuses before any unpadding (offload's DecryptRequest.Check).
func rawDecrypt(priv *rsa.PrivateKey, ct []byte) (em []byte, ok bool) {
	c := new(big.Int).SetBytes(ct)
	if len(ct) > priv.Size() || c.Cmp(priv.N) >= 0 {
		return nil, false
	}
	return c.Exp(c, priv.D, priv.N).FillBytes(make([]byte, priv.Size())), true
}

// digestOf hashes msg with h; MD5+SHA1 is the two digests side by side,
// as TLS 1.0 signs them.
func digestOf(h crypto.Hash, msg []byte) []byte {
	if h == crypto.MD5SHA1 {
		return append(digestOf(crypto.MD5, msg), digestOf(crypto.SHA1, msg)...)
	}
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// signHashes are the hashes crypto/rsa signs PKCS #1 v1.5 with, besides 0.
var signHashes = []crypto.Hash{
	crypto.MD5, crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512,
	crypto.SHA512_224, crypto.SHA512_256, crypto.SHA3_224, crypto.SHA3_256, crypto.SHA3_384,
	crypto.SHA3_512, crypto.MD5SHA1,
}

// TestDigestInfoDER derives each prefix anew from the hash's OID with
// encoding/asn1 and compares it with the table.
func TestDigestInfoDER(t *testing.T) {
	oids := map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.MD5: {1, 2, 840, 113549, 2, 5}, crypto.SHA1: {1, 3, 14, 3, 2, 26},
		crypto.SHA224: {2, 16, 840, 1, 101, 3, 4, 2, 4}, crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
		crypto.SHA512_224: {2, 16, 840, 1, 101, 3, 4, 2, 5}, crypto.SHA512_256: {2, 16, 840, 1, 101, 3, 4, 2, 6},
		crypto.SHA3_224: {2, 16, 840, 1, 101, 3, 4, 2, 7}, crypto.SHA3_256: {2, 16, 840, 1, 101, 3, 4, 2, 8},
		crypto.SHA3_384: {2, 16, 840, 1, 101, 3, 4, 2, 9}, crypto.SHA3_512: {2, 16, 840, 1, 101, 3, 4, 2, 10},
	}
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	type info struct {
		Alg    algID
		Digest []byte
	}
	for h, oid := range oids {
		d := digestOf(h, []byte("x"))
		want, err := asn1.Marshal(info{algID{oid, asn1.NullRawValue}, d})
		if err != nil {
			t.Fatal(err)
		}
		got, err := DigestInfo(256, h, d)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%v: DigestInfo = %x, %v; want %x", h, got, err, want)
		}
	}
}

// TestEncodePKCS1v15 signs here and checks there: the signature of the
// encoding equals crypto/rsa's own (PKCS #1 v1.5 is deterministic) and
// verifies.
func TestEncodePKCS1v15(t *testing.T) {
	priv := key2048(t)
	k := priv.Size()
	for _, h := range append([]crypto.Hash{0}, signHashes...) {
		t.Run(h.String(), func(t *testing.T) {
			d := []byte("raw input, signed as it is")
			if h != 0 {
				d = digestOf(h, []byte("message"))
			}
			em, err := EncodePKCS1v15(k, h, d)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rsa.SignPKCS1v15(nil, priv, h, d)
			if err != nil {
				t.Fatal(err)
			}
			if got := rawSign(priv, em); !bytes.Equal(got, want) {
				t.Fatalf("signature differs from crypto/rsa's")
			}
			if err := rsa.VerifyPKCS1v15(&priv.PublicKey, h, d, want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPKCS1v15BadInput is every way a PKCS #1 v1.5 signature input can be
// wrong, with the sentinel each error must match.
func TestPKCS1v15BadInput(t *testing.T) {
	d256 := digestOf(crypto.SHA256, nil)
	d512 := digestOf(crypto.SHA512, nil)
	tests := []struct {
		name   string
		k      int
		h      crypto.Hash
		digest []byte
		want   []error
	}{
		{"modulus too small for the SHA-512 DigestInfo", 19 + 64 + 10, crypto.SHA512, d512, []error{rsa.ErrMessageTooLong, offload.ErrInvalid}},
		{"512-bit modulus and SHA-512", 64, crypto.SHA512, d512, []error{rsa.ErrMessageTooLong, offload.ErrInvalid}},
		{"raw input over k-11", 256, 0, make([]byte, 246), []error{rsa.ErrMessageTooLong, offload.ErrInvalid}},
		{"zero-length digest", 256, crypto.SHA256, nil, []error{offload.ErrInvalid}},
		{"over-long digest", 256, crypto.SHA256, append(d256, 0), []error{offload.ErrInvalid}},
		{"SHA-512 digest for SHA-256", 256, crypto.SHA256, d512, []error{offload.ErrInvalid}},
		{"hash without a DigestInfo", 256, crypto.BLAKE2b_256, d256, []error{offload.ErrUnsupported}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []func(int, crypto.Hash, []byte) ([]byte, error){DigestInfo, EncodePKCS1v15} {
				out, err := f(tc.k, tc.h, tc.digest)
				wantErrors(t, out, err, tc.want)
			}
		})
	}
	// The edge: exactly room for T and 11 bytes of padding.
	if _, err := EncodePKCS1v15(19+64+11, crypto.SHA512, d512); err != nil {
		t.Fatalf("smallest modulus for SHA-512: %v", err)
	}
	if _, err := EncodePKCS1v15(256, 0, make([]byte, 245)); err != nil {
		t.Fatalf("longest raw input: %v", err)
	}
}

// wantErrors fails t unless err matches every one of want.
func wantErrors(t *testing.T, out []byte, err error, want []error) {
	t.Helper()
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("= %x, %v; want an error matching %v", out, err, w)
		}
	}
}

// TestEncodePSS signs here and checks there, for moduli whose bit length
// is and is not one more than a multiple of 8, with every salt mode
// resolved by offload.PSSSaltLength: the signature verifies with the
// resolved salt length, and equals crypto/rsa's own when both read the
// same salt.
func TestEncodePSS(t *testing.T) {
	for _, bits := range []int{1024, 1025, 1031, 2048} {
		priv := key2048(t)
		if bits != 2048 {
			var err error
			if priv, err = rsa.GenerateKey(rand.Reader, bits); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for _, mode := range []int{rsa.PSSSaltLengthAuto, rsa.PSSSaltLengthEqualsHash, 1, 17} {
				d := digestOf(h, []byte("message"))
				salt, err := offload.PSSSaltLength(bits, h, mode)
				if err != nil {
					// Too small a modulus (SHA-512 with a 64-byte salt on
					// 1024 bits): crypto/rsa must refuse it too.
					if _, rsaErr := rsa.SignPSS(rand.Reader, priv, h, d, &rsa.PSSOptions{SaltLength: mode}); !errors.Is(rsaErr, rsa.ErrMessageTooLong) || !errors.Is(err, rsa.ErrMessageTooLong) {
						t.Fatalf("%d bits, %v, salt %d: %v; crypto/rsa: %v", bits, h, mode, err, rsaErr)
					}
					continue
				}
				saltBytes := make([]byte, salt)
				rand.Read(saltBytes)
				em, err := EncodePSS(bytes.NewReader(saltBytes), bits, h, d, salt)
				if err != nil {
					t.Fatalf("%d bits, %v, salt %d: %v", bits, h, salt, err)
				}
				if len(em) != priv.Size() {
					t.Fatalf("%d bits: %d-byte encoding", bits, len(em))
				}
				sig := rawSign(priv, em)
				if err := rsa.VerifyPSS(&priv.PublicKey, h, d, sig, &rsa.PSSOptions{SaltLength: salt}); err != nil {
					t.Fatalf("%d bits, %v, salt %d: %v", bits, h, salt, err)
				}
				want, err := rsa.SignPSS(bytes.NewReader(saltBytes), priv, h, d, &rsa.PSSOptions{SaltLength: mode})
				if err != nil || !bytes.Equal(sig, want) {
					t.Fatalf("%d bits, %v, salt %d: signature differs from crypto/rsa's (%v)", bits, h, salt, err)
				}
			}
		}
	}
}

func TestPSSBadInput(t *testing.T) {
	d := digestOf(crypto.SHA256, nil)
	tests := []struct {
		name   string
		bits   int
		h      crypto.Hash
		digest []byte
		salt   int
		rand   io.Reader
		want   []error
	}{
		{"modulus too small for the salt", 2048, crypto.SHA256, d, 256 - 32 - 1, rand.Reader, []error{rsa.ErrMessageTooLong, offload.ErrInvalid}},
		{"modulus too small for the hash", 256, crypto.SHA512, digestOf(crypto.SHA512, nil), 0, rand.Reader, []error{rsa.ErrMessageTooLong, offload.ErrInvalid}},
		{"no modulus", 0, crypto.SHA256, d, 0, rand.Reader, []error{rsa.ErrMessageTooLong}},
		{"zero-length digest", 2048, crypto.SHA256, nil, 32, rand.Reader, []error{offload.ErrInvalid}},
		{"over-long digest", 2048, crypto.SHA256, append(d, 0), 32, rand.Reader, []error{offload.ErrInvalid}},
		{"negative salt", 2048, crypto.SHA256, d, rsa.PSSSaltLengthEqualsHash, rand.Reader, []error{offload.ErrInvalid}},
		{"unavailable hash", 2048, crypto.BLAKE2b_256, d, 32, rand.Reader, []error{offload.ErrUnsupported}},
		{"short salt source", 2048, crypto.SHA256, d, 32, bytes.NewReader(make([]byte, 31)), []error{io.ErrUnexpectedEOF}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := EncodePSS(tc.rand, tc.bits, tc.h, tc.digest, tc.salt)
			wantErrors(t, out, err, tc.want)
		})
	}
	// The edge: the longest salt a 2048-bit modulus takes with SHA-256.
	if _, err := EncodePSS(rand.Reader, 2048, crypto.SHA256, d, 256-32-2); err != nil {
		t.Fatalf("longest salt: %v", err)
	}
}

// TestDecodeOAEP encrypts there and decodes here, then spoils the block.
func TestDecodeOAEP(t *testing.T) {
	priv := key2048(t)
	for _, tt := range []struct {
		name string
		msg  []byte
		opts *rsa.OAEPOptions
	}{
		{"sha256", []byte("session key"), &rsa.OAEPOptions{Hash: crypto.SHA256}},
		{"sha256 label", []byte("session key"), &rsa.OAEPOptions{Hash: crypto.SHA256, Label: []byte("label")}},
		{"sha512 mgf sha1", []byte("x"), &rsa.OAEPOptions{Hash: crypto.SHA512, MGFHash: crypto.SHA1, Label: []byte("x")}},
		{"sha1 empty message", []byte{}, &rsa.OAEPOptions{Hash: crypto.SHA1}},
		{"longest message", make([]byte, 256-2*32-2), &rsa.OAEPOptions{Hash: crypto.SHA256}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, &priv.PublicKey, tt.msg, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			mgf := tt.opts.MGFHash
			if mgf == 0 {
				mgf = tt.opts.Hash
			}
			em, _ := rawDecrypt(priv, ct)
			kept := bytes.Clone(em)
			got, err := DecodeOAEP(em, tt.opts.Hash, mgf, tt.opts.Label)
			if err != nil || !bytes.Equal(got, tt.msg) {
				t.Fatalf("DecodeOAEP = %q, %v", got, err)
			}
			if !bytes.Equal(em, kept) {
				t.Fatal("DecodeOAEP changed its input")
			}
			if _, err := DecodeOAEP(em, tt.opts.Hash, mgf, append(bytes.Clone(tt.opts.Label), 'z')); !errors.Is(err, rsa.ErrDecryption) {
				t.Fatalf("wrong label: %v", err)
			}
			for _, i := range []int{0, 1, 40, len(em) - 1} {
				bad := bytes.Clone(em)
				bad[i] ^= 0x80
				if out, err := DecodeOAEP(bad, tt.opts.Hash, mgf, tt.opts.Label); !errors.Is(err, rsa.ErrDecryption) {
					t.Fatalf("byte %d flipped: %q, %v", i, out, err)
				}
			}
			if _, err := DecodeOAEP(em[:2*tt.opts.Hash.Size()+1], tt.opts.Hash, mgf, nil); !errors.Is(err, rsa.ErrDecryption) {
				t.Fatalf("short block: %v", err)
			}
		})
	}
	if _, err := DecodeOAEP(make([]byte, 256), crypto.BLAKE2b_256, crypto.SHA256, nil); !errors.Is(err, offload.ErrUnsupported) {
		t.Fatalf("unavailable hash: %v", err)
	}
}

// TestDecodePKCS1v15 encrypts there and decodes here, and checks the
// session-key behaviour against crypto/rsa's on the same ciphertexts.
func TestDecodePKCS1v15(t *testing.T) {
	priv := key2048(t)
	for _, n := range []int{0, 1, 16, 48, 256 - 11} {
		msg := make([]byte, n)
		rand.Read(msg)
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, msg)
		if err != nil {
			t.Fatal(err)
		}
		em, _ := rawDecrypt(priv, ct)
		got, err := DecodePKCS1v15(em)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: DecodePKCS1v15 = %x, %v", n, got, err)
		}
		checkSessionKey(t, priv, ct, n)
		checkSessionKey(t, priv, ct, n+1)
	}
	bad := [][]byte{
		nil, make([]byte, 10), make([]byte, 256),
		append([]byte{0, 2}, bytes.Repeat([]byte{1}, 254)...),                             // no separator
		append(append([]byte{0, 2}, bytes.Repeat([]byte{1}, 7)...), make([]byte, 247)...), // PS of 7 bytes
		append(append([]byte{0, 1}, bytes.Repeat([]byte{1}, 8)...), make([]byte, 246)...), // block type 1
		append(append([]byte{1, 2}, bytes.Repeat([]byte{1}, 8)...), make([]byte, 246)...), // first byte not zero
	}
	for _, em := range bad {
		if out, err := DecodePKCS1v15(em); !errors.Is(err, rsa.ErrDecryption) || out != nil {
			t.Errorf("DecodePKCS1v15(%x) = %x, %v", em, out, err)
		}
	}
	if err := DecodeSessionKey(make([]byte, 256), make([]byte, 256-10)); !errors.Is(err, rsa.ErrDecryption) {
		t.Errorf("session key too long for the modulus: %v", err)
	}
}

// checkSessionKey runs DecodeSessionKey and rsa.DecryptPKCS1v15SessionKey
// on ct from the same random key and wants the same key out of both.
func checkSessionKey(t *testing.T, priv *rsa.PrivateKey, ct []byte, n int) {
	t.Helper()
	start := make([]byte, n)
	rand.Read(start)
	want := bytes.Clone(start)
	wantErr := rsa.DecryptPKCS1v15SessionKey(nil, priv, ct, want)
	got := bytes.Clone(start)
	var err error
	if em, ok := rawDecrypt(priv, ct); ok {
		err = DecodeSessionKey(em, got)
	} else {
		err = rsa.ErrDecryption
	}
	if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) {
		t.Fatalf("%d-byte session key: got %x, %v; crypto/rsa %x, %v", n, got, err, want, wantErr)
	}
}

// FuzzDecodePKCS1v15 compares the unpadding with crypto/rsa on any block:
// the fuzzer's bytes are the block a raw decryption returns, encrypted
// with the public key to give crypto/rsa the ciphertext of that block.
func FuzzDecodePKCS1v15(f *testing.F) {
	priv := key2048(f)
	valid := append(append([]byte{0, 2}, bytes.Repeat([]byte{7}, 200)...), 0)
	f.Add(append(valid, make([]byte, 256-len(valid))...), 16)
	f.Add(append(valid, make([]byte, 256-len(valid))...), 53)
	f.Add(make([]byte, 256), 0)
	f.Add(append([]byte{0, 2}, bytes.Repeat([]byte{1}, 254)...), 4)
	f.Fuzz(func(t *testing.T, em []byte, keyLen int) {
		if len(em) != priv.Size() || keyLen < 0 || keyLen > 300 {
			return
		}
		m := new(big.Int).SetBytes(em)
		if m.Cmp(priv.N) >= 0 {
			return
		}
		ct := m.Exp(m, big.NewInt(int64(priv.E)), priv.N).FillBytes(make([]byte, priv.Size()))
		want, wantErr := rsa.DecryptPKCS1v15(nil, priv, ct)
		got, err := DecodePKCS1v15(em)
		if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("DecodePKCS1v15 = %x, %v; crypto/rsa %x, %v", got, err, want, wantErr)
		}
		checkSessionKey(t, priv, ct, keyLen)
	})
}

// FuzzDecodeOAEP is the same comparison for OAEP, with a label.
func FuzzDecodeOAEP(f *testing.F) {
	priv := key2048(f)
	ct, err := rsa.EncryptOAEP(crypto.SHA256.New(), rand.Reader, &priv.PublicKey, []byte("seed"), []byte("label"))
	if err != nil {
		f.Fatal(err)
	}
	em, _ := rawDecrypt(priv, ct)
	f.Add(em, []byte("label"))
	f.Add(em, []byte("other"))
	f.Add(make([]byte, 256), []byte{})
	f.Fuzz(func(t *testing.T, em, label []byte) {
		if len(em) != priv.Size() {
			return
		}
		m := new(big.Int).SetBytes(em)
		if m.Cmp(priv.N) >= 0 {
			return
		}
		ct := m.Exp(m, big.NewInt(int64(priv.E)), priv.N).FillBytes(make([]byte, priv.Size()))
		want, wantErr := rsa.DecryptOAEP(crypto.SHA256.New(), nil, priv, ct, label)
		got, err := DecodeOAEP(em, crypto.SHA256, crypto.SHA256, label)
		if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("DecodeOAEP = %x, %v; crypto/rsa %x, %v", got, err, want, wantErr)
		}
		if err != nil && err != rsa.ErrDecryption {
			t.Fatalf("error %v is not the bare rsa.ErrDecryption", err)
		}
	})
}

// FuzzEncodePSS encodes any digest with any salt for moduli of several
// sizes, and crypto/rsa verifies the signature, or fails where EncodePSS
// failed.
func FuzzEncodePSS(f *testing.F) {
	priv := key2048(f)
	f.Add(digestOf(crypto.SHA256, nil), []byte("salt"), uint8(0))
	f.Add(digestOf(crypto.SHA256, nil), make([]byte, 222), uint8(0))
	f.Add(digestOf(crypto.SHA512, nil), make([]byte, 200), uint8(2))
	f.Add([]byte{}, []byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, digest, salt []byte, hi uint8) {
		h := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1}[hi%4]
		em, err := EncodePSS(bytes.NewReader(salt), 2048, h, digest, len(salt))
		fits := 256 >= h.Size()+len(salt)+2
		switch {
		case len(digest) != h.Size():
			if !errors.Is(err, offload.ErrInvalid) {
				t.Fatalf("a %d-byte %v digest: %v", len(digest), h, err)
			}
			return
		case !fits:
			if !errors.Is(err, rsa.ErrMessageTooLong) {
				t.Fatalf("a %d-byte salt: %v", len(salt), err)
			}
			return
		case err != nil:
			t.Fatal(err)
		}
		sig := rawSign(priv, em)
		opts := &rsa.PSSOptions{SaltLength: len(salt)}
		if len(salt) == 0 {
			opts.SaltLength = rsa.PSSSaltLengthAuto // VerifyPSS's only way to accept a zero salt
		}
		if err := rsa.VerifyPSS(&priv.PublicKey, h, digest, sig, opts); err != nil {
			t.Fatalf("%v, %d-byte salt: %v", h, len(salt), err)
		}
	})
}
