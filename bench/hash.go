package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"

	"github.com/offcrypt/offcrypt/hasher"
	"github.com/offcrypt/offcrypt/offload"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// hashWrite is the size of every Write in the hash suite.
const hashWrite = 1 << 20

// wolfHSMComm is wolfHSM's comm buffer: the payload cap of a small device.
const wolfHSMComm = 1280

// runHash measures SHA-256 and SHA-512 over hasher/ on the soft engine, with
// the default payload cap and with a 1,280-byte one, against the standard
// library: one caller writes 1 MiB and takes the digest, over and over.
func runHash(w io.Writer, cfg config) error {
	fmt.Fprintln(w, "### Hashing: hasher/ over soft against crypto/sha256 and crypto/sha512 direct (1 caller, 1 MiB writes)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| hash | soft payload cap | direct MB/s | offcrypt MB/s | ratio | requests per MiB | ns per request | extra ns per request |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	ctx := context.Background()
	data := bytes.Repeat([]byte("offcrypt"), hashWrite/8)
	for _, hc := range []struct {
		name string
		h    crypto.Hash
		std  func() hash.Hash
	}{{"SHA-256", crypto.SHA256, sha256.New}, {"SHA-512", crypto.SHA512, sha512.New}} {
		for _, capBytes := range []int{0, wolfHSMComm} {
			eng, err := soft.New(soft.Options{MaxInline: capBytes})
			if err != nil {
				return err
			}
			capName := fmt.Sprintf("%d (default)", eng.Info().MaxInline)
			if capBytes != 0 {
				capName = fmt.Sprint(capBytes)
			}
			h, err := hasher.New(eng, hc.h)
			if err != nil {
				eng.Close()
				return err
			}
			std := hc.std()
			stdSum := make([]byte, 0, std.Size())
			ourSum := make([]byte, 0, std.Size())
			direct := func() error {
				std.Reset()
				std.Write(data)
				stdSum = std.Sum(stdSum[:0])
				return nil
			}
			ours := func() error {
				h.Reset()
				if _, err := h.WriteContext(ctx, data); err != nil {
					return err
				}
				var err error
				ourSum, err = h.SumContext(ctx, ourSum[:0])
				return err
			}
			// One checked round first: the digests must agree, and it
			// counts the engine requests one round costs.
			before := eng.Stats().Op(offload.OpHash).Completed
			direct()
			if err := ours(); err != nil {
				eng.Close()
				return err
			}
			reqs := eng.Stats().Op(offload.OpHash).Completed - before
			if !bytes.Equal(stdSum, ourSum) {
				eng.Close()
				return fmt.Errorf("%s over soft: digest differs from the standard library's", hc.name)
			}
			d, o, err := compare(direct, ours, 1, cfg)
			eng.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", hc.name, err)
			}
			perReq := 1e9 / o / float64(reqs)
			extra := (1e9/o - 1e9/d) / float64(reqs)
			fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.3f | %d | %.0f | %.0f |\n",
				hc.name, capName, d*hashWrite/1e6, o*hashWrite/1e6, o/d, reqs, perReq, extra)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "MB is 10^6 bytes. ns per request: the offcrypt time for 1 MiB and its digest divided by the engine requests it took (the engine's Stats); extra ns per request: the same for the difference from direct.")
	return nil
}
