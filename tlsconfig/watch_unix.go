//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package tlsconfig

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// How often a pending handshake looks at its client's socket: first after
// watchFirst, then at doubling intervals up to watchMax. A signature that
// finishes before watchFirst costs one timer and nothing else.
const (
	watchFirst = 5 * time.Millisecond
	watchMax   = 100 * time.Millisecond
)

// watchPeer calls gone, at most once, if the client closes conn before
// stop is called. It peeks at the socket (MSG_PEEK, so no byte is taken
// from crypto/tls) from a timer: while the server signs, the client has sent
// its ClientHello and waits, so a read that reports end of file or an
// error means the client is gone. Connections that are not sockets are not
// watched.
func watchPeer(conn net.Conn, gone func()) (stop func()) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	w := &watch{rc: rc, gone: gone, every: watchFirst}
	w.mu.Lock()
	w.t = time.AfterFunc(w.every, w.check)
	w.mu.Unlock()
	return w.stop
}

type watch struct {
	rc    syscall.RawConn
	gone  func()
	every time.Duration // touched only by the timer's function

	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func (w *watch) check() {
	if peerClosed(w.rc) {
		w.mu.Lock()
		stopped := w.stopped
		w.stopped = true
		w.mu.Unlock()
		if !stopped {
			w.gone()
		}
		return
	}
	w.every = min(2*w.every, watchMax)
	w.mu.Lock()
	if !w.stopped {
		w.t.Reset(w.every)
	}
	w.mu.Unlock()
}

func (w *watch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.t.Stop()
	w.mu.Unlock()
}

// peerClosed peeks at one byte without waiting: end of file or a socket
// error means the peer is gone; data, or nothing yet, means it is not.
func peerClosed(rc syscall.RawConn) bool {
	var closed bool
	var b [1]byte
	err := rc.Control(func(fd uintptr) {
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			case err != nil:
				closed = true
			case n == 0:
				closed = true
			}
			return
		}
	})
	// Control fails once the connection is closed on our side.
	return closed || err != nil
}
