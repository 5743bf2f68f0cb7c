//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/offcrypt/offcrypt/internal/messagetest"
	"github.com/offcrypt/offcrypt/offload"
)

// TestMessages: the errors a person meets first read once, name what they
// are about and say what was seen, and still match their sentinel. Each
// want is a regular expression for the whole message.
func TestMessages(t *testing.T) {
	needHSM(t)
	needPkcs11Tool(t)
	ctx := context.Background()
	const keyURI = "pkcs11:token=offcrypt;object=ec256;type=private"
	open := func(c Config) func() error {
		return func() error {
			e, err := Open(ctx, c)
			if e != nil {
				e.Close()
			}
			return err
		}
	}
	// Two engines on one token: a key of one is foreign to the other.
	e1, e2 := openEngine(t, 1), openEngine(t, 1)
	key, err := e1.FindKey(ctx, keyURI)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("offcrypt"))
	sign := func(e *Engine, k *offload.Key) error {
		_, err := e.Sign(ctx, &offload.SignRequest{Key: k, Digest: digest[:], Opts: crypto.SHA256}).Wait(ctx)
		return err
	}
	closed, err := Open(ctx, Config{Module: softhsmModule, TokenLabel: mainToken, PIN: pinFunc(mainPIN), MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	closedKey, err := closed.FindKey(ctx, keyURI)
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		err  func() error
		is   error
		want string
	}{
		{"empty PIN", open(Config{Module: softhsmModule, TokenLabel: authToken, PIN: pinFunc("")}), offload.ErrAuth,
			`^pkcs11: Config\.PIN returned an empty PIN for token "authtest" \(a nil Config\.PIN opens it without logging in\): offload: authentication failed$`},
		{"wrong PIN", open(Config{Module: softhsmModule, TokenLabel: authToken, PIN: pinFunc("0000")}), offload.ErrAuth,
			`^pkcs11: C_Login: CKR_PIN_INCORRECT \(0xA0\)$`},
		{"no token matches", open(Config{Module: softhsmModule, TokenLabel: "web", PIN: pinFunc(mainPIN)}), offload.ErrNotFound,
			`^pkcs11: no token matches \(label "web", serial "", slot any\); 3 tokens seen: (label "(offcrypt|authtest|remote)" serial "[0-9a-f]+" slot [0-9]+(; |: offload: not found$)){3}`},
		{"bad URI", func() error { _, err := e1.FindKey(ctx, "pkcs11:token=offcrypt;objekt=ec256"); return err }, offload.ErrInvalid,
			`^pkcs11: uri: unknown path attribute "objekt": offload: invalid input$`},
		{"missing key", func() error { _, err := e1.FindKey(ctx, "pkcs11:token=offcrypt;object=nope;type=private"); return err }, offload.ErrNotFound,
			`^pkcs11: no key matches pkcs11:token=offcrypt;object=nope;type=private: offload: not found$`},
		{"closed engine", func() error { return sign(closed, closedKey) }, offload.ErrClosed,
			`^pkcs11 sign: engine closed$`},
		{"foreign key", func() error { return sign(e2, key) }, offload.ErrForeignKey,
			`^pkcs11 sign: key belongs to another engine: pkcs11 ECDSA-P256 key "pkcs11:token=[^;]+;serial=[^;]+;object=ec256;id=%01;type=private"$`},
		{"key", func() error { return fmt.Errorf("%v", key) }, nil,
			`^pkcs11 ECDSA-P256 key "pkcs11:token=[^;]+;serial=[^;]+;object=ec256;id=%01;type=private"$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			messagetest.Check(t, tt.err(), tt.is, tt.want)
		})
	}
}
