package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clients enforces the per-client limits ([Config.MaxConnsPerClient],
// [Config.ClientRequestsPerSecond]): a client is an IP address. A nil
// *clients limits nothing. It is safe for concurrent use.
type clients struct {
	maxConns int        // 0: no limit
	limit    rate.Limit // 0: no limit
	burst    int
	now      func() time.Time

	mu    sync.Mutex
	m     map[netip.Addr]*client
	swept time.Time // when idle clients were last forgotten
}

// client is what the limits track of one client.
type client struct {
	conns int
	lim   *rate.Limiter // nil without a rate limit
}

// sweepEvery is how often idle clients are forgotten: those with no
// connection open and a full token bucket, whom forgetting changes nothing
// for.
const sweepEvery = time.Minute

// newClients returns the per-client limits of cfg, which has its defaults;
// nil when cfg sets none.
func newClients(cfg Config) *clients {
	if cfg.MaxConnsPerClient == 0 && cfg.ClientRequestsPerSecond == 0 {
		return nil
	}
	c := &clients{maxConns: cfg.MaxConnsPerClient, now: cfg.Now, m: make(map[netip.Addr]*client)}
	if cfg.ClientRequestsPerSecond > 0 {
		c.limit, c.burst = rate.Limit(cfg.ClientRequestsPerSecond), cfg.ClientRequestBurst
	}
	return c
}

// clientIP is the client of a connection or request from addr ("ip:port",
// as net.Conn.RemoteAddr and http.Request.RemoteAddr give it); false when
// addr is no IP address (a test's pipe).
func clientIP(addr string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// getLocked returns the state of ip, made on first use, and forgets idle
// clients every sweepEvery.
func (c *clients) getLocked(ip netip.Addr, now time.Time) *client {
	if now.Sub(c.swept) >= sweepEvery {
		c.swept = now
		for k, cl := range c.m {
			if cl.conns == 0 && (cl.lim == nil || cl.lim.TokensAt(now) >= float64(c.burst)) {
				delete(c.m, k)
			}
		}
	}
	cl := c.m[ip]
	if cl == nil {
		cl = &client{}
		if c.limit > 0 {
			cl.lim = rate.NewLimiter(c.limit, c.burst)
		}
		c.m[ip] = cl
	}
	return cl
}

// openConn counts a new connection from addr; false, counting nothing, when
// its client has MaxConnsPerClient open already.
func (c *clients) openConn(addr net.Addr) bool {
	if c == nil || c.maxConns == 0 {
		return true
	}
	ip, ok := clientIP(addr.String())
	if !ok {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.getLocked(ip, c.now())
	if cl.conns >= c.maxConns {
		return false
	}
	cl.conns++
	return true
}

// closeConn uncounts a connection from addr that openConn counted.
func (c *clients) closeConn(addr net.Addr) {
	if c == nil || c.maxConns == 0 {
		return
	}
	ip, ok := clientIP(addr.String())
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.m[ip]; cl != nil && cl.conns > 0 {
		cl.conns--
	}
}

// allowRequest reports whether the client at addr may make a request now,
// taking a token if so.
func (c *clients) allowRequest(addr string) bool {
	if c == nil || c.limit == 0 {
		return true
	}
	ip, ok := clientIP(addr)
	if !ok {
		return true
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(ip, now).lim.AllowN(now, 1)
}
