package proxy

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener holds each accepted connection until a slot is free, like
// golang.org/x/net/netutil.LimitListener, but accepts first so that a
// wait can be counted. A slot is freed when its connection is closed,
// hijacked ones (tunnels) included.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	waits     *atomic.Uint64
	closeOnce sync.Once
	done      chan struct{}
}

func newLimitListener(l net.Listener, slots chan struct{}, waits *atomic.Uint64) *limitListener {
	return &limitListener{Listener: l, slots: slots, waits: waits, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.waits.Add(1)
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			_ = c.Close()
			return nil, net.ErrClosed
		}
	}
	return &limitConn{Conn: c, slots: l.slots}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn frees its slot when closed.
type limitConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}

// CloseWrite half-closes the connection, so that a tunnel can pass on a
// close from the target.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
