package proxy

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener holds each accepted connection until a slot is free, like
// golang.org/x/net/netutil.LimitListener, but accepts first so that a
// wait can be counted. A slot is freed when its connection is closed,
// hijacked ones (tunnels) included. A connection whose client is at its
// own limit (see [clients.openConn]) takes no slot: it is handed to refuse
// instead.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	waits     *atomic.Uint64
	clients   *clients
	refuse    func(net.Conn)
	closeOnce sync.Once
	done      chan struct{}
}

func newLimitListener(l net.Listener, slots chan struct{}, waits *atomic.Uint64, cl *clients, refuse func(net.Conn)) *limitListener {
	return &limitListener{Listener: l, slots: slots, waits: waits, clients: cl, refuse: refuse, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.clients.openConn(c.RemoteAddr()) {
			l.refuse(c)
			continue
		}
		select {
		case l.slots <- struct{}{}:
		default:
			l.waits.Add(1)
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				l.clients.closeConn(c.RemoteAddr())
				_ = c.Close()
				return nil, net.ErrClosed
			}
		}
		return &limitConn{Conn: c, slots: l.slots, clients: l.clients}, nil
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn frees its slot, and its place in its client's count, when
// closed.
type limitConn struct {
	net.Conn
	slots   chan struct{}
	clients *clients
	once    sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		<-c.slots
		c.clients.closeConn(c.RemoteAddr())
	})
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
