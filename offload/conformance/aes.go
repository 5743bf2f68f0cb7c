package conformance

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/offcrypt/offcrypt/internal/wycheproof"
	"github.com/offcrypt/offcrypt/offload"
)

// aesFile is a Wycheproof AES file: aes_gcm_test.json (AeadTest) or
// aes_cbc_pkcs5_test.json (IndCpaTest).
type aesFile struct {
	TestGroups []struct {
		KeySize int               `json:"keySize"`
		IVSize  int               `json:"ivSize"`
		TagSize int               `json:"tagSize"`
		Tests   []wycheproof.Test `json:"tests"`
	} `json:"testGroups"`
}

// aesKeys imports the vectors' raw AES keys, remembering by size which the
// engine refuses: an engine need not take every AES key size.
type aesKeys struct {
	s       *suite
	refused map[int]error // key size in bits, the refusal
	skipped int           // vectors skipped for a refused key
}

// get imports raw, or returns nil when the engine refuses keys of its size
// (ErrInvalid or ErrUnsupported). Any other failure fails the test.
func (k *aesKeys) get(t *testing.T, raw []byte) *offload.Key {
	t.Helper()
	bits := 8 * len(raw)
	if _, ok := k.refused[bits]; ok {
		k.skipped++
		return nil
	}
	key, err := k.s.Import(slices.Clone(raw))
	switch {
	case err == nil:
		return key
	case refused(err):
		k.refused[bits] = err
		k.skipped++
		return nil
	}
	t.Fatalf("importing a %d-bit AES key: %v", bits, err)
	return nil
}

func (k *aesKeys) log(t *testing.T) {
	for bits, err := range k.refused {
		t.Logf("%d-bit AES keys refused (%v)", bits, err)
	}
	if k.skipped > 0 {
		t.Logf("%d vectors skipped for a refused key size", k.skipped)
	}
}

// aesVectors loads a Wycheproof AES file and returns its groups, skipping
// the test when the Setup cannot import the vectors' keys.
func (s *suite) aesVectors(t *testing.T, file string) (aesFile, *aesKeys) {
	t.Helper()
	if s.Import == nil {
		t.Skip("Wycheproof AES vectors need known keys, and Setup.Import is nil")
	}
	var f aesFile
	loadJSON(t, file, &f)
	return f, &aesKeys{s: s, refused: make(map[int]error)}
}

// wycheproofGCM runs aes_gcm_test.json, one request per operation, with the
// vector's nonce as the IV. Valid vectors must encrypt to ct||tag and
// decrypt to msg; an engine may refuse a nonce other than 96 bits, or more
// than 240 bytes of AAD (QuickAssist's limit), with ErrInvalid or
// ErrUnsupported (counted in the log), but what it takes must give the
// vector's result. Invalid vectors (modified tags, empty
// nonces) must fail to decrypt with an error and no plaintext; an empty
// nonce must be refused for encryption too. Vectors whose tag is not 128
// bits, or whose input exceeds Info.MaxInline, are skipped and counted.
func (s *suite) wycheproofGCM(t *testing.T) {
	f, keys := s.aesVectors(t, "wycheproof/aes_gcm_test.json")
	var tagSkipped, tooLong, refusedIV, ran int
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			if g.TagSize != 128 || len(tc.Tag) != 16 {
				tagSkipped++
				continue
			}
			if max(len(tc.Msg)+len(tc.Tag), len(tc.AAD), len(tc.IV)) > s.info.MaxInline {
				tooLong++
				continue
			}
			t.Run(fmt.Sprintf("%dbit/iv%d/%s", g.KeySize, g.IVSize, tc.Name()), func(t *testing.T) {
				key := keys.get(t, tc.Key)
				if key == nil {
					return
				}
				ran++
				sealed := slices.Concat(tc.CT, tc.Tag)
				// A 96-bit nonce and AAD every device takes: QuickAssist
				// takes at most 240 bytes of AAD, and may refuse more.
				std := len(tc.IV) == 12 && len(tc.AAD) <= 240
				req := func(decrypt bool, in []byte) *offload.CipherRequest {
					return &offload.CipherRequest{Key: key, Mode: offload.ModeGCM, Decrypt: decrypt,
						IV: slices.Clone(tc.IV), AAD: slices.Clone(tc.AAD), Input: slices.Clone(in)}
				}
				what := fmt.Sprintf("%s %v (%d-bit nonce)", tc.Comment, tc.Flags, 8*len(tc.IV))
				if tc.Result == "invalid" {
					got, err, ok := s.cipher(t, req(true, sealed))
					switch {
					case !ok:
					case err == nil:
						t.Errorf("%s: an invalid vector opened to %x", what, got)
					case len(got) != 0:
						t.Errorf("%s: failed (%v), yet returned %d bytes", what, err, len(got))
					}
					if len(tc.IV) == 0 {
						if got, err, ok := s.cipher(t, req(false, tc.Msg)); ok && err == nil {
							t.Errorf("%s: sealed with an empty nonce: %x", what, got)
						}
					}
					return
				}
				// Valid (or acceptable): both directions must match, unless
				// the engine refuses a non-standard nonce size or AAD length
				// outright.
				wasRefused := false
				check := func(dir string, got []byte, err error, ok bool, want []byte) {
					switch {
					case !ok:
					case err != nil && !std && refused(err):
						wasRefused = true
					case err != nil && tc.Result == "acceptable":
						t.Logf("%s: %s failed (%v), allowed for an acceptable vector", what, dir, err)
					case err != nil:
						t.Errorf("%s: %s: %v", what, dir, err)
					case !bytes.Equal(got, want):
						t.Errorf("%s: %s gave %x, want %x", what, dir, got, want)
					}
				}
				got, err, ok := s.cipher(t, req(false, tc.Msg))
				check("seal", got, err, ok, sealed)
				got, err, ok = s.cipher(t, req(true, sealed))
				check("open", got, err, ok, tc.Msg)
				if wasRefused {
					refusedIV++
				}
			})
		}
	}
	keys.log(t)
	t.Logf("%d vectors run; skipped: %d with a tag other than 128 bits, %d longer than MaxInline %d; %d valid vectors whose nonce size or AAD length the engine refused",
		ran, tagSkipped, tooLong, s.info.MaxInline, refusedIV)
}

// pkcs5Pad pads msg to whole AES blocks as PKCS #5 (#7) does: n bytes of
// value n, 1 <= n <= 16.
func pkcs5Pad(msg []byte) []byte {
	n := aes.BlockSize - len(msg)%aes.BlockSize
	return append(slices.Clone(msg), bytes.Repeat([]byte{byte(n)}, n)...)
}

// pkcs5Unpad removes PKCS #5 padding, or reports that there is none.
func pkcs5Unpad(b []byte) ([]byte, error) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return nil, errors.New("not whole blocks")
	}
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, fmt.Errorf("padding length %d", n)
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, errors.New("padding bytes differ")
		}
	}
	return b[:len(b)-n], nil
}

// wycheproofCBC runs aes_cbc_pkcs5_test.json. Engines do CBC without
// padding (CipherRequest input is whole blocks), so the suite pads and
// unpads, as a caller of the engine would:
//
//   - valid vectors: the vector's msg, padded here, must encrypt to its ct;
//     ct must decrypt to the padded msg, which unpads to msg;
//   - invalid vectors (bad padding, or an empty ciphertext) are not invalid
//     to the engine, since CBC has no integrity: the engine must return the
//     raw decryption of ct (the same bytes crypto/cipher gives), and it is
//     the suite's PKCS #5 check that must reject them. An engine may refuse
//     the empty input with ErrInvalid or ErrUnsupported instead.
//
// Vectors longer than Info.MaxInline are skipped and counted.
func (s *suite) wycheproofCBC(t *testing.T) {
	f, keys := s.aesVectors(t, "wycheproof/aes_cbc_pkcs5_test.json")
	var tooLong, ran int
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			padded := pkcs5Pad(tc.Msg)
			if max(len(padded), len(tc.CT)) > s.info.MaxInline {
				tooLong++
				continue
			}
			t.Run(fmt.Sprintf("%dbit/%s", g.KeySize, tc.Name()), func(t *testing.T) {
				if len(tc.IV) != aes.BlockSize {
					t.Fatalf("a %d-byte CBC IV in the vectors", len(tc.IV))
				}
				key := keys.get(t, tc.Key)
				if key == nil {
					return
				}
				ran++
				req := func(decrypt bool, in []byte) *offload.CipherRequest {
					return &offload.CipherRequest{Key: key, Mode: offload.ModeCBC, Decrypt: decrypt,
						IV: slices.Clone(tc.IV), Input: slices.Clone(in)}
				}
				what := fmt.Sprintf("%s %v", tc.Comment, tc.Flags)
				if tc.Result == "invalid" {
					got, err, ok := s.cipher(t, req(true, tc.CT))
					switch {
					case !ok:
						return
					case err != nil && len(tc.CT) == 0 && refused(err):
						return
					case err != nil:
						t.Fatalf("%s: %v; the engine must return the raw decryption (CBC has no integrity, padding is the caller's)", what, err)
					}
					if raw := cbcDecrypt(t, tc.Key, tc.IV, tc.CT); !bytes.Equal(got, raw) {
						t.Errorf("%s: decrypted to %x, crypto/cipher gives %x", what, got, raw)
					}
					if msg, err := pkcs5Unpad(got); err == nil {
						t.Errorf("%s: the padding check took %x and gave %x", what, got, msg)
					}
					return
				}
				got, err, ok := s.cipher(t, req(false, padded))
				if ok && (err != nil || !bytes.Equal(got, tc.CT)) {
					t.Errorf("%s: encrypt gave %x, %v; want %x", what, got, err, []byte(tc.CT))
				}
				got, err, ok = s.cipher(t, req(true, tc.CT))
				if !ok {
					return
				}
				if err != nil || !bytes.Equal(got, padded) {
					t.Fatalf("%s: decrypt gave %x, %v; want %x", what, got, err, padded)
				}
				if msg, err := pkcs5Unpad(got); err != nil || !bytes.Equal(msg, tc.Msg) {
					t.Errorf("%s: unpadding gave %x, %v; want %x", what, msg, err, []byte(tc.Msg))
				}
			})
		}
	}
	keys.log(t)
	t.Logf("%d vectors run; %d skipped, longer than MaxInline %d", ran, tooLong, s.info.MaxInline)
}

// cbcDecrypt decrypts whole blocks with crypto/cipher, for comparison.
func cbcDecrypt(t *testing.T, key, iv, ct []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatalf("vector key %s: %v", hex.EncodeToString(key), err)
	}
	if len(ct)%aes.BlockSize != 0 {
		t.Fatalf("a vector's ciphertext of %d bytes is not whole blocks", len(ct))
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, ct)
	return out
}
