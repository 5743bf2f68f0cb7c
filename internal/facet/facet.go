// Package facet gives a wrapper engine exactly the optional interfaces of
// offload (offload.Importer, offload.Generator, offload.HashSessioner) that
// it can honour, so that code looking for one by type assertion finds it
// only when it works. The wrappers (offload/inject, offload/compose) decide
// which they offer from the engines they wrap; With builds the value.
package facet

import "github.com/offcrypt/offcrypt/offload"

// core carries the wrapper's own engine; every shape With returns embeds it,
// so Base can find the wrapper again.
type core struct{ offload.Engine }

func (c core) base() offload.Engine { return c.Engine }

// With returns base with the optional interfaces among im, gen and hs that
// are not nil, and no others. Pass a nil interface, never a typed nil
// pointer, for an interface base must not have. With no optional interface
// it returns base itself.
func With(base offload.Engine, im offload.Importer, gen offload.Generator, hs offload.HashSessioner) offload.Engine {
	c := core{base}
	switch {
	case im != nil && gen != nil && hs != nil:
		return struct {
			core
			offload.Importer
			offload.Generator
			offload.HashSessioner
		}{c, im, gen, hs}
	case im != nil && gen != nil:
		return struct {
			core
			offload.Importer
			offload.Generator
		}{c, im, gen}
	case im != nil && hs != nil:
		return struct {
			core
			offload.Importer
			offload.HashSessioner
		}{c, im, hs}
	case gen != nil && hs != nil:
		return struct {
			core
			offload.Generator
			offload.HashSessioner
		}{c, gen, hs}
	case im != nil:
		return struct {
			core
			offload.Importer
		}{c, im}
	case gen != nil:
		return struct {
			core
			offload.Generator
		}{c, gen}
	case hs != nil:
		return struct {
			core
			offload.HashSessioner
		}{c, hs}
	}
	return base
}

// Base returns the engine With was given to make eng, or eng itself when
// With returned it unchanged or did not make it.
func Base(eng offload.Engine) offload.Engine {
	if b, ok := eng.(interface{ base() offload.Engine }); ok {
		return b.base()
	}
	return eng
}
