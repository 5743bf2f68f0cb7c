package tpm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/offcrypt/offcrypt/offload"
)

// Capabilities is what a TPM says it has (TPM2_GetCapability, and
// TPM2_TestParms for key sizes): the table an engine's Info is built from.
type Capabilities struct {
	Manufacturer string              // TPM_PT_MANUFACTURER as text ("IBM", "IFX", …)
	Algorithms   []offload.Algorithm // what this binding can do on this TPM, in Algorithm order
	RSABits      []int               // RSA modulus sizes of 2048 and 3072 the TPM accepts
	InputBuffer  int                 // TPM_PT_INPUT_BUFFER: the largest hash sequence update
	ObjectSlots  int                 // TPM_PT_HR_TRANSIENT_MIN: transient objects loaded at once
}

// Capabilities asks the TPM what it has.
func (d *Device) Capabilities(ctx context.Context) (Capabilities, error) {
	if err := d.ready(ctx); err != nil {
		return Capabilities{}, err
	}
	var c Capabilities
	algs := map[tpm2.TPMAlgID]bool{}
	curves := map[tpm2.TPMECCCurve]bool{}
	props := map[tpm2.TPMPT]uint32{}
	err := d.run(ctx, func(t transport.TPM) error {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapAlgs, Property: 0, PropertyCount: 128}.Execute(t)
		if err != nil {
			return wrapRC("GetCapability(algorithms)", err)
		}
		al, err := rsp.CapabilityData.Data.Algorithms()
		if err != nil {
			return err
		}
		for _, a := range al.AlgProperties {
			algs[a.Alg] = true
		}
		rsp, err = tpm2.GetCapability{Capability: tpm2.TPMCapECCCurves, Property: 0, PropertyCount: 32}.Execute(t)
		if err != nil {
			return wrapRC("GetCapability(curves)", err)
		}
		cl, err := rsp.CapabilityData.Data.ECCCurves()
		if err != nil {
			return err
		}
		for _, cv := range cl.ECCCurves {
			curves[cv] = true
		}
		for _, p := range []tpm2.TPMPT{tpm2.TPMPTManufacturer, tpm2.TPMPTInputBuffer, tpm2.TPMPTHRTransientMin} {
			rsp, err = tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(p), PropertyCount: 1}.Execute(t)
			if err != nil {
				return wrapRC("GetCapability(properties)", err)
			}
			pl, err := rsp.CapabilityData.Data.TPMProperties()
			if err != nil {
				return err
			}
			for _, tp := range pl.TPMProperty {
				props[tp.Property] = tp.Value
			}
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	m := props[tpm2.TPMPTManufacturer]
	c.Manufacturer = strings.TrimRight(string([]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}), "\x00 ")
	c.InputBuffer = int(props[tpm2.TPMPTInputBuffer])
	c.ObjectSlots = int(props[tpm2.TPMPTHRTransientMin])

	if algs[tpm2.TPMAlgRSA] {
		for _, bits := range []int{2048, 3072} {
			ok, err := d.testRSA(ctx, bits)
			if err != nil {
				return c, err
			}
			if ok {
				c.RSABits = append(c.RSABits, bits)
			}
		}
	}
	add := func(a offload.Algorithm, ok bool) {
		if ok {
			c.Algorithms = append(c.Algorithms, a)
		}
	}
	ecdsa := algs[tpm2.TPMAlgECC] && algs[tpm2.TPMAlgECDSA]
	rsa := len(c.RSABits) > 0
	add(offload.ECDSAP256, ecdsa && curves[tpm2.TPMECCNistP256])
	add(offload.ECDSAP384, ecdsa && curves[tpm2.TPMECCNistP384])
	add(offload.RSAPKCS1v15, rsa && algs[tpm2.TPMAlgRSASSA])
	add(offload.RSAPSS, rsa && algs[tpm2.TPMAlgRSAPSS])
	add(offload.RSAOAEP, rsa && algs[tpm2.TPMAlgOAEP])
	add(offload.RSAPKCS1v15Decrypt, rsa && algs[tpm2.TPMAlgRSAES])
	add(offload.SHA256, algs[tpm2.TPMAlgSHA256])
	add(offload.SHA384, algs[tpm2.TPMAlgSHA384])
	add(offload.SHA512, algs[tpm2.TPMAlgSHA512])
	add(offload.Random, true)
	return c, nil
}

// testRSA asks the TPM (TPM2_TestParms) whether it makes RSA keys of bits.
func (d *Device) testRSA(ctx context.Context, bits int) (bool, error) {
	tmpl, err := KeySpec{Type: offload.KeyRSA, Bits: bits}.template()
	if err != nil {
		return false, err
	}
	err = d.run(ctx, func(t transport.TPM) error {
		_, err := tpm2.TestParms{Parameters: tpm2.TPMTPublicParms{Type: tpm2.TPMAlgRSA, Parameters: tmpl.Parameters}}.Execute(t)
		return wrapRC("TestParms", err)
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, offload.ErrInvalid):
		return false, nil
	}
	return false, fmt.Errorf("tpm: testing RSA-%d: %w", bits, err)
}
