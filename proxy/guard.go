package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// A proxy that listens beyond loopback is a door into its host: without a
// guard, anyone who can reach it reaches the host's loopback-only services
// through it (pxperf's own gRPC port, which trusts loopback, among them).
// The guard refuses targets inside the host unless [Config.AllowTargets]
// lists them, as Squid's default configuration denies to_localhost.
//
// It checks twice. Before anything is dialled, a target given as an IP
// address or as localhost is judged as it stands, whatever the route. When
// the proxy dials a target itself (no upstream), the address actually
// dialled is judged too, after name resolution, so that a name that
// resolves to 127.0.0.1 is refused as 127.0.0.1 would be. Through an
// upstream, the upstream resolves names and its own policy applies.

// errDenied is wrapped by every refusal of the guard.
var errDenied = errors.New("refused: the target is inside this host")

// deniedError is a refusal of the guard: why the proxy will not reach addr
// for a request to target.
type deniedError struct {
	target string         // host:port as asked
	addr   netip.AddrPort // the address judged
	reason string         // what addr is: "a loopback address of this host"
	own    bool           // one of pxperf's own listening addresses
}

func (e *deniedError) Error() string {
	what := fmt.Sprintf("%s is %s", e.target, e.reason)
	if host, _, _ := net.SplitHostPort(e.target); host != e.addr.Addr().String() {
		what = fmt.Sprintf("%s resolves to %s, %s", e.target, e.addr, e.reason)
	}
	if e.own {
		return what + "; the proxy does not reach it unless proxy.allow_targets lists it with its port"
	}
	return what + "; the proxy does not reach it unless proxy.allow_targets lists it"
}

func (e *deniedError) Unwrap() error { return errDenied }

// thisNetwork is 0.0.0.0/8, "this host on this network" (RFC 1122): a
// connection to it reaches the host itself on Linux.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// inside says what ip is when it is inside this host by its kind, or ""
// when it is not.
func inside(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "a loopback address of this host"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsUnspecified(), ip.Is4() && thisNetwork.Contains(ip):
		return "an unspecified address (this host)"
	}
	return ""
}

// guard judges the targets a proxy is asked for. It is safe for concurrent
// use.
type guard struct {
	allow hostList
	// localAddrs returns the addresses of the host's interfaces, for
	// listeners on an unspecified address; net.InterfaceAddrs when nil.
	localAddrs func() ([]net.Addr, error)

	mu  sync.RWMutex
	own []netip.AddrPort // pxperf's listening addresses, unmapped
}

// addOwn adds addresses pxperf listens on; addresses that are not TCP or
// IP addresses are ignored.
func (g *guard) addOwn(addrs ...net.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			g.own = append(g.own, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
}

// isOwn reports whether pxperf listens on ip:port, directly or through a
// listener on an unspecified address and one of the host's interfaces.
func (g *guard) isOwn(ip netip.Addr, port uint16) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	wildcard := false
	for _, o := range g.own {
		if o.Port() != port {
			continue
		}
		if o.Addr() == ip {
			return true
		}
		wildcard = wildcard || o.Addr().IsUnspecified()
	}
	return wildcard && g.isLocal(ip)
}

// isLocal reports whether ip is an address of one of the host's
// interfaces, or inside the host by its kind.
func (g *guard) isLocal(ip netip.Addr) bool {
	if inside(ip) != "" {
		return true
	}
	list := g.localAddrs
	if list == nil {
		list = net.InterfaceAddrs
	}
	addrs, err := list()
	if err != nil {
		return true // cannot tell: refuse rather than risk it
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// judge returns a refusal when ip:port, dialled for a request to host
// (a name or an IP address) and port, is inside this host and the allow
// list does not open it; nil otherwise.
func (g *guard) judge(host string, ip netip.Addr, port string) error {
	ip = ip.Unmap()
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%w: port %q", errDenied, port)
	}
	var reason string
	own := g.isOwn(ip, uint16(n))
	switch {
	case own:
		if g.allow.matchPort(host, port) || g.allow.matchPort(ip.String(), port) {
			return nil
		}
		reason = "one of pxperf's own listening addresses"
	case inside(ip) != "":
		if g.allow.match(host, port) || g.allow.match(ip.String(), port) {
			return nil
		}
		reason = inside(ip)
	default:
		return nil
	}
	return &deniedError{target: net.JoinHostPort(host, port), addr: netip.AddrPortFrom(ip, uint16(n)), reason: reason, own: own}
}

// loopbackAddrs are what localhost stands for.
var loopbackAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}

// checkTarget judges a target as asked, before anything is dialled: an IP
// address as it stands, localhost (and its subdomains, RFC 6761) as the
// loopback addresses. Other names pass here; a direct dial judges the
// address they resolve to (see [guard.control]).
func (g *guard) checkTarget(host, port string) error {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.judge(host, ip, port)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		for _, ip := range loopbackAddrs {
			if err := g.judge(host, ip, port); err != nil {
				return err
			}
		}
	}
	return nil
}

// control is the ControlContext of the dialer of direct connections: it
// judges each address dialled, after name resolution, for the target of
// the exchange in ctx. A dial without an exchange in ctx is refused: every
// direct dial must say what it is for.
func (g *guard) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot judge %s address %q", errDenied, network, address)
	}
	ex := exchangeOf(ctx)
	if ex == nil {
		return fmt.Errorf("%w: a dial to %s for no request", errDenied, address)
	}
	host := strings.TrimSuffix(strings.ToLower(strings.Trim(ex.targetHost, "[]")), ".")
	return g.judge(host, ap.Addr(), strconv.Itoa(int(ap.Port())))
}
