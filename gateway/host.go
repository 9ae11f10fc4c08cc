package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// errHost is wrapped by the errors of a bad AllowedHosts item.
var errHost = errors.New("not a host name or host:port")

// hostCheck decides which Host headers the gateway answers.
type hostCheck struct {
	anyIP bool                // the gateway listens on every address
	names map[string]struct{} // lower-case host names allowed with any port
	exact map[string]struct{} // lower-case "host:port" allowed as they are
}

// newHostCheck returns the check for a gateway listening on listen that
// allows the hosts in allowed besides loopback names (see [Config]).
func newHostCheck(listen string, allowed []string) (*hostCheck, error) {
	c := &hostCheck{names: map[string]struct{}{}, exact: map[string]struct{}{}}
	if listen != "" {
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("gateway: ListenAddress %q: %w", listen, err)
		}
		if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
			c.anyIP = true
		} else {
			c.names[normalHost(host)] = struct{}{}
		}
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" || strings.ContainsAny(a, "/?#@ \t") {
			return nil, fmt.Errorf("gateway: AllowedHosts %q: %w", a, errHost)
		}
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil && (!strings.Contains(a, ":") || strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]")):
			c.names[normalHost(a)] = struct{}{}
		case err == nil && host != "" && isPort(port):
			c.exact[normalHost(host)+":"+port] = struct{}{}
		default:
			return nil, fmt.Errorf("gateway: AllowedHosts %q: %w", a, errHost)
		}
	}
	return c, nil
}

// isPort reports whether s is a port number.
func isPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

// normalHost returns host in lower case without brackets or a trailing
// dot, the form hosts are compared in.
func normalHost(host string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// allows reports whether the gateway answers a request whose Host header
// is hostport (host or host:port).
func (c *hostCheck) allows(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port, or a bare IPv6 address.
		host, port = hostport, ""
	}
	host = normalHost(host)
	if host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsLoopback() || c.anyIP {
			return true
		}
	}
	if _, ok := c.names[host]; ok {
		return true
	}
	_, ok := c.exact[host+":"+port]
	return ok && port != ""
}

// handler refuses with 403 the requests whose Host header is not allowed,
// saying which setting allows it.
func (c *hostCheck) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.allows(r.Host) {
			http.Error(w, fmt.Sprintf("pxperf gateway: Host %q is not one of this server's names; "+
				"if it is, add it to server.http_allowed_hosts (--http-allowed-hosts)", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
