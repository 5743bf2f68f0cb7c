package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	"runtime"

	ocipher "github.com/offcrypt/offcrypt/cipher"
	"github.com/offcrypt/offcrypt/offload/soft"
)

// runCipher measures AES-128-GCM Seal over cipher/ with a soft-engine key
// against crypto/cipher with the same key. Each caller reuses its own dst
// buffer on both sides, so neither side allocates the ciphertext.
func runCipher(w io.Writer, cfg config) error {
	eng, err := soft.New(soft.Options{})
	if err != nil {
		return err
	}
	defer eng.Close()
	raw := make([]byte, 16)
	rand.Read(raw)
	key, err := eng.ImportKey(raw)
	if err != nil {
		return err
	}
	sealer, err := ocipher.NewGCM(key)
	if err != nil {
		return err
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return err
	}
	std, err := cipher.NewGCM(blk)
	if err != nil {
		return err
	}
	nonce := make([]byte, std.NonceSize())
	rand.Read(nonce)
	ctx := context.Background()

	fmt.Fprintln(w, "### AES-128-GCM Seal: cipher/ over soft against crypto/cipher direct (dst reused)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| plaintext | callers | direct MB/s | offcrypt MB/s | ratio | CPUs used: direct | offcrypt |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, size := range []int{16 << 10, 64} {
		pt := make([]byte, size)
		rand.Read(pt)
		// The same key and nonce must give the same ciphertext.
		want := std.Seal(nil, nonce, pt, nil)
		got, err := sealer.SealContext(ctx, nil, nonce, pt, nil)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("AES-GCM over soft: ciphertext differs from crypto/cipher's")
		}
		// Each caller seals into a buffer of its own with room for the
		// ciphertext, so neither side allocates it.
		direct := func(int) func() error {
			dst := callerBuf(size + std.Overhead())[:0]
			return func() error {
				std.Seal(dst, nonce, pt, nil)
				return nil
			}
		}
		offc := func(int) func() error {
			dst := callerBuf(size + std.Overhead())[:0]
			return func() error {
				_, err := sealer.SealContext(ctx, dst, nonce, pt, nil)
				return err
			}
		}
		for _, callers := range []int{1, runtime.GOMAXPROCS(0)} {
			m, err := measureSides([]func(int) func() error{direct, offc}, []int{callers, callers}, cfg)
			if err != nil {
				return fmt.Errorf("AES-GCM %d B: %w", size, err)
			}
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.3f | %s | %s |\n", sizeName(size), callers,
				m[0].rate*float64(size)/1e6, m[1].rate*float64(size)/1e6, m[1].rate/m[0].rate, coresUsed(m[0]), coresUsed(m[1]))
		}
	}
	one, err := harnessCost(1, cfg)
	if err != nil {
		return err
	}
	all, err := harnessCost(runtime.GOMAXPROCS(0), cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "MB is 10^6 bytes of plaintext. Seal with the plain cipher.AEAD method costs the same as SealContext, which is used here so an engine failure stops the run. "+
		"Each caller seals into a buffer on cache lines of its own. CPUs used: the process's CPU time over the wall time while the side ran (median); a figure well under the callers means the machine gave the process less, and the row's rates are low for that reason. The harness's own cost per op, measured in this run with an empty op: %.1f ns with 1 caller, %.1f ns per caller's op with %d callers.\n",
		one, all, runtime.GOMAXPROCS(0))
	return nil
}

func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
