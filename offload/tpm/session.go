package tpm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Parameters of the device's session: SHA-256 HMACs, 16-byte nonces,
// AES-128-CFB parameter encryption.
const (
	sessionHash      = crypto.SHA256
	sessionHashAlg   = tpm2.TPMAlgSHA256
	sessionNonceSize = 16
	sessionAESBits   = 128
)

// session is one salted HMAC session with AES-128-CFB parameter encryption,
// started once per connection and reused by every command that takes a
// session. Unlike a session whose options are fixed at creation, it takes
// for each command the auth value of the entity it authorizes and the
// directions it encrypts (use): TPM2_Sign can encrypt its digest but not its
// signature (its response does not start with a TPM2B), GetRandom its answer
// but not its request, RSA_Decrypt both, and each key has its own auth.
//
// It implements tpm2.Session for go-tpm's command marshalling; it is not
// safe for concurrent use, like the Device that owns it.
type session struct {
	handle      tpm2.TPMHandle
	sessionKey  []byte
	nonceCaller []byte
	nonceTPM    []byte

	// Set by use for the next command.
	auth      []byte // auth value of the authorized entity (nil when none)
	encIn     bool   // encrypt the command's first parameter
	encOut    bool   // the TPM encrypts the response's first parameter
	authorize bool   // the session authorizes a handle
}

// startSession starts a session salted to the key at saltHandle (the SRK,
// whose public area is saltPub).
func startSession(t transport.TPM, saltHandle tpm2.TPMHandle, saltPub *tpm2.TPMTPublic) (*session, error) {
	ek, err := tpm2.ImportEncapsulationKey(saltPub)
	if err != nil {
		return nil, fmt.Errorf("tpm: salt key: %w", err)
	}
	salt, encSalt, err := tpm2.CreateEncryptedSalt(rand.Reader, ek)
	if err != nil {
		return nil, fmt.Errorf("tpm: encrypting the session salt: %w", err)
	}
	s := &session{nonceCaller: make([]byte, sessionNonceSize)}
	if _, err := rand.Read(s.nonceCaller); err != nil {
		return nil, err
	}
	rsp, err := tpm2.StartAuthSession{
		TPMKey:        saltHandle,
		Bind:          tpm2.TPMRHNull,
		NonceCaller:   tpm2.TPM2BNonce{Buffer: s.nonceCaller},
		EncryptedSalt: tpm2.TPM2BEncryptedSecret{Buffer: encSalt},
		SessionType:   tpm2.TPMSEHMAC,
		Symmetric: tpm2.TPMTSymDef{
			Algorithm: tpm2.TPMAlgAES,
			KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(sessionAESBits)),
			Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
		},
		AuthHash: sessionHashAlg,
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm: StartAuthSession: %w", err)
	}
	s.handle = rsp.SessionHandle
	s.nonceTPM = rsp.NonceTPM.Buffer
	s.sessionKey = tpm2.KDFa(sessionHash, salt, "ATH", s.nonceTPM, s.nonceCaller, sessionHash.Size()*8)
	return s, nil
}

// use sets up the session for one command and returns it.
func (s *session) use(auth []byte, authorize, encIn, encOut bool) *session {
	s.auth, s.authorize, s.encIn, s.encOut = auth, authorize, encIn, encOut
	return s
}

var errNotStarted = errors.New("tpm: session not started")

// Init implements tpm2.Session; the session is started by startSession.
func (s *session) Init(transport.TPM) error {
	if s.handle == 0 {
		return errNotStarted
	}
	return nil
}

// CleanupFailure implements tpm2.Session. A failed command leaves a
// continued session open.
func (s *session) CleanupFailure(transport.TPM) error { return nil }

// NonceTPM implements tpm2.Session.
func (s *session) NonceTPM() tpm2.TPM2BNonce { return tpm2.TPM2BNonce{Buffer: s.nonceTPM} }

// NewNonceCaller implements tpm2.Session.
func (s *session) NewNonceCaller() error {
	_, err := rand.Read(s.nonceCaller)
	return err
}

// attrs is the session attributes byte for the next command.
func (s *session) attrs() byte {
	a := byte(1) // continueSession
	if s.encIn {
		a |= 1 << 5 // decrypt: the TPM decrypts the command's first parameter
	}
	if s.encOut {
		a |= 1 << 6 // encrypt: the TPM encrypts the response's first parameter
	}
	return a
}

// hmacKey is sessionKey || authValue (trailing zeros dropped) when the
// session authorizes an entity, sessionKey alone otherwise.
func (s *session) hmacKey(authIndex int, names []tpm2.TPM2BName) []byte {
	key := append([]byte(nil), s.sessionKey...)
	if s.authorize && authIndex < len(names) {
		a := s.auth
		for len(a) > 0 && a[len(a)-1] == 0 {
			a = a[:len(a)-1]
		}
		key = append(key, a...)
	}
	return key
}

func (s *session) mac(key, pHash, newer, older, addNonces []byte, attrs byte) []byte {
	m := hmac.New(sessionHash.New, key)
	m.Write(pHash)
	m.Write(newer)
	m.Write(older)
	m.Write(addNonces)
	m.Write([]byte{attrs})
	return m.Sum(nil)
}

// Authorize implements tpm2.Session.
func (s *session) Authorize(cc tpm2.TPMCC, parms, addNonces []byte, names []tpm2.TPM2BName, authIndex int) (*tpm2.TPMSAuthCommand, error) {
	if s.handle == 0 {
		return nil, errNotStarted
	}
	h := sessionHash.New()
	_ = binary.Write(h, binary.BigEndian, cc)
	for _, n := range names {
		h.Write(n.Buffer)
	}
	h.Write(parms)
	attrs := s.attrs()
	mac := s.mac(s.hmacKey(authIndex, names), h.Sum(nil), s.nonceCaller, s.nonceTPM, addNonces, attrs)
	var a tpm2.TPMASession
	a.ContinueSession = true
	a.Decrypt = s.encIn
	a.Encrypt = s.encOut
	return &tpm2.TPMSAuthCommand{
		Handle:        s.handle,
		Nonce:         tpm2.TPM2BNonce{Buffer: append([]byte(nil), s.nonceCaller...)},
		Attributes:    a,
		Authorization: tpm2.TPM2BData{Buffer: mac},
	}, nil
}

// errResponseMAC reports a response whose HMAC does not verify: the bytes
// were changed on the way, or the session is out of step.
var errResponseMAC = errors.New("tpm: response HMAC does not verify")

// Validate implements tpm2.Session.
func (s *session) Validate(rc tpm2.TPMRC, cc tpm2.TPMCC, parms []byte, names []tpm2.TPM2BName, authIndex int, auth *tpm2.TPMSAuthResponse) error {
	s.nonceTPM = append(s.nonceTPM[:0], auth.Nonce.Buffer...)
	if !auth.Attributes.ContinueSession {
		s.handle = 0
	}
	h := sessionHash.New()
	_ = binary.Write(h, binary.BigEndian, rc)
	_ = binary.Write(h, binary.BigEndian, cc)
	h.Write(parms)
	var attrs byte
	if auth.Attributes.ContinueSession {
		attrs |= 1
	}
	if auth.Attributes.Decrypt {
		attrs |= 1 << 5
	}
	if auth.Attributes.Encrypt {
		attrs |= 1 << 6
	}
	want := s.mac(s.hmacKey(authIndex, names), h.Sum(nil), s.nonceTPM, s.nonceCaller, nil, attrs)
	if subtle.ConstantTimeCompare(want, auth.Authorization.Buffer) != 1 {
		return errResponseMAC
	}
	return nil
}

// IsEncryption implements tpm2.Session.
func (s *session) IsEncryption() bool { return s.encOut }

// IsDecryption implements tpm2.Session.
func (s *session) IsDecryption() bool { return s.encIn }

// cfb returns the AES-128-CFB key stream for one parameter: KDFa(sessionKey
// || authValue, "CFB", newer, older).
func (s *session) cfb(newer, older []byte, decrypt bool) (cipher.Stream, error) {
	const keyBytes = sessionAESBits / 8
	value := append(append([]byte(nil), s.sessionKey...), s.authValue()...)
	keyIV := tpm2.KDFa(sessionHash, value, "CFB", newer, older, (keyBytes+aes.BlockSize)*8)
	block, err := aes.NewCipher(keyIV[:keyBytes])
	if err != nil {
		return nil, err
	}
	if decrypt {
		return cipher.NewCFBDecrypter(block, keyIV[keyBytes:]), nil
	}
	return cipher.NewCFBEncrypter(block, keyIV[keyBytes:]), nil
}

func (s *session) authValue() []byte {
	if s.authorize {
		return s.auth
	}
	return nil
}

// Encrypt implements tpm2.Session: it encrypts a command's first parameter.
func (s *session) Encrypt(p []byte) error {
	if !s.encIn {
		return nil
	}
	st, err := s.cfb(s.nonceCaller, s.nonceTPM, false)
	if err != nil {
		return err
	}
	st.XORKeyStream(p, p)
	return nil
}

// Decrypt implements tpm2.Session: it decrypts a response's first parameter.
func (s *session) Decrypt(p []byte) error {
	if !s.encOut {
		return nil
	}
	st, err := s.cfb(s.nonceTPM, s.nonceCaller, true)
	if err != nil {
		return err
	}
	st.XORKeyStream(p, p)
	return nil
}

// Handle implements tpm2.Session.
func (s *session) Handle() tpm2.TPMHandle { return s.handle }
