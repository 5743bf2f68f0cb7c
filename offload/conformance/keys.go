package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/inject"
)

// RSA keys are slow to make, under the race detector above all: each size is
// made once per process and shared by every run. 2048-bit is a Wycheproof
// key, so it costs nothing.
var rsaKeys struct {
	sync.Mutex
	m map[int]*rsa.PrivateKey
}

func rsaPrivate(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	rsaKeys.Lock()
	defer rsaKeys.Unlock()
	if k, ok := rsaKeys.m[bits]; ok {
		return k
	}
	if rsaKeys.m == nil {
		rsaKeys.m = make(map[int]*rsa.PrivateKey)
	}
	var k *rsa.PrivateKey
	if bits == 2048 {
		var f oaepFile
		loadJSON(t, "wycheproof/rsa_oaep_2048_sha256_mgf1sha256_test.json", &f)
		k = parseRSA(t, f.TestGroups[0].PrivateKeyPkcs8)
	} else {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, bits); err != nil {
			t.Fatal(err)
		}
	}
	rsaKeys.m[bits] = k
	return k
}

func parseRSA(t *testing.T, pkcs8Hex string) *rsa.PrivateKey {
	t.Helper()
	der, err := hex.DecodeString(pkcs8Hex)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("parsing a vector's RSA key: %v", err)
	}
	return k.(*rsa.PrivateKey)
}

// newPrivate makes a private key of type kt in memory, to import.
func newPrivate(t *testing.T, kt offload.KeyType, bits int) any {
	t.Helper()
	var (
		priv any
		err  error
	)
	switch kt {
	case offload.KeyECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case offload.KeyECDSAP384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case offload.KeyECDSAP521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case offload.KeyRSA:
		priv = rsaPrivate(t, bits)
	case offload.KeyEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case offload.KeyEd448:
		_, priv, err = ed448.GenerateKey(rand.Reader)
	case offload.KeyMLDSA44:
		_, priv, err = mldsa44.GenerateKey(rand.Reader)
	case offload.KeyMLDSA65:
		_, priv, err = mldsa65.GenerateKey(rand.Reader)
	case offload.KeyMLDSA87:
		_, priv, err = mldsa87.GenerateKey(rand.Reader)
	case offload.KeyAES:
		b := make([]byte, bits/8)
		rand.Read(b)
		priv = b
	default:
		t.Fatalf("no private key of type %v", kt)
	}
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// keyTypeOf returns the key type an algorithm needs.
func keyTypeOf(a offload.Algorithm) offload.KeyType {
	switch a {
	case offload.ECDSAP256:
		return offload.KeyECDSAP256
	case offload.ECDSAP384:
		return offload.KeyECDSAP384
	case offload.ECDSAP521:
		return offload.KeyECDSAP521
	case offload.RSAPKCS1v15, offload.RSAPSS, offload.RSAOAEP, offload.RSAPKCS1v15Decrypt:
		return offload.KeyRSA
	case offload.Ed25519, offload.Ed25519ph, offload.Ed25519ctx:
		return offload.KeyEd25519
	case offload.Ed448:
		return offload.KeyEd448
	case offload.MLDSA44:
		return offload.KeyMLDSA44
	case offload.MLDSA65:
		return offload.KeyMLDSA65
	case offload.MLDSA87:
		return offload.KeyMLDSA87
	case offload.AESGCM, offload.AESCBC, offload.AESCTR:
		return offload.KeyAES
	}
	return 0
}

// defaultBits is the size asked for when a test does not care.
func defaultBits(kt offload.KeyType) int {
	switch kt {
	case offload.KeyRSA:
		return 2048
	case offload.KeyAES:
		return 256
	}
	return 0
}

// key returns a key of type kt (and size bits, for RSA and AES) from the
// Setup, failing the test when none can be had.
func (s *suite) key(t *testing.T, kt offload.KeyType, bits int) keyPair {
	t.Helper()
	kp, err := s.tryKey(t, kt, bits)
	if err != nil {
		t.Fatalf("no %v key of %d bits for a claimed algorithm: %v", kt, bits, err)
	}
	return kp
}

// tryKey is key without failing.
func (s *suite) tryKey(t *testing.T, kt offload.KeyType, bits int) (keyPair, error) {
	t.Helper()
	if bits == 0 {
		bits = defaultBits(kt)
	}
	id := keyID{kt, bits}
	if kp, ok := s.keys[id]; ok {
		return kp, nil
	}
	var errs []error
	if s.Import != nil {
		priv := newPrivate(t, kt, bits)
		k, err := s.Import(priv)
		if err == nil {
			kp := keyPair{key: k, priv: priv}
			s.keys[id] = kp
			return kp, nil
		}
		errs = append(errs, err)
	}
	if s.Generate != nil {
		k, err := s.Generate(context.Background(), kt, bits)
		if err == nil {
			kp := keyPair{key: k}
			s.keys[id] = kp
			return kp, nil
		}
		errs = append(errs, err)
	}
	if k, ok := s.Keys[kt]; ok && k != nil {
		kp := keyPair{key: k}
		s.keys[id] = kp
		return kp, nil
	}
	errs = append(errs, errors.New("not in Setup.Keys"))
	return keyPair{}, errors.Join(errs...)
}

// importKey imports a known private key, for vectors. It skips the test
// when the Setup cannot import.
func (s *suite) importKey(t *testing.T, priv any) *offload.Key {
	t.Helper()
	if s.Import == nil {
		t.Skip("published vectors need Setup.Import")
	}
	k, err := s.Import(priv)
	if err != nil {
		t.Fatalf("importing a vector's key: %v", err)
	}
	return k
}

// base returns the engine under the suite's wrapper, which keys belong to.
func (s *suite) base() offload.Engine {
	if inner := inject.Unwrap(s.Engine); inner != nil && s.mode.opts != nil {
		return inner
	}
	return s.Engine
}
