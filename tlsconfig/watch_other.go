//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package tlsconfig

import "net"

// watchPeer does nothing on this platform: a handshake whose client leaves
// waits for the engine until its context ends or Options.SignTimeout.
func watchPeer(net.Conn, func()) (stop func()) { return func() {} }
