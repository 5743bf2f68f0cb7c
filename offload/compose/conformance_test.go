package compose_test

import (
	"context"
	"testing"

	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/compose"
	"github.com/offcrypt/offcrypt/offload/conformance"
	"github.com/offcrypt/offcrypt/offload/qat"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// TestConformance runs the suite on compositions: the modelled card
// beside the software engine (with and without a threshold that keeps
// most work on the card), and two software engines.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(t *testing.T) offload.Engine
		opt   compose.Options
	}{
		{"qat+soft", openQAT, compose.Options{Fallback: true}},
		{"qat+soft/threshold=1", openQAT, compose.Options{Threshold: 1}},
		{"soft+soft", openSoft, compose.Options{Fallback: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) conformance.Setup {
				eng, err := compose.New(tc.first(t), openSoft(t), tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				return conformance.Setup{
					Engine:   eng,
					Import:   eng.(offload.Importer).ImportKey,
					Generate: eng.(offload.Generator).GenerateKey,
					Refuse:   refuse,
				}
			})
		})
	}
}

func openQAT(t *testing.T) offload.Engine {
	e, err := qat.Open(context.Background(), qat.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func openSoft(t *testing.T) offload.Engine {
	e, err := soft.New(soft.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// refuse tries each numeric option at -1.
func refuse(t *testing.T) map[string]error {
	a, b := openSoft(t), openSoft(t)
	defer a.Close()
	defer b.Close()
	eng, err := compose.New(a, b, compose.Options{Threshold: -1})
	if err == nil {
		eng.Close()
	}
	return map[string]error{"Options.Threshold": err}
}
