//go:build !cgo

package main

import (
	"errors"
	"io"
)

var errNoHSM = errors.New("the pkcs11 suite needs cgo (build with CGO_ENABLED=1)")

func runPKCS11(io.Writer, config) error { return errNoHSM }

func threadsChild(io.Writer, config) error { return errNoHSM }
