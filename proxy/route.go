package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// hostList is a parsed list of targets in NO_PROXY syntax (see
// [Config.NoProxy] and [Config.AllowTargets]). It follows
// golang.org/x/net/http/httpproxy's syntax, but does not match loopback
// targets by itself: a proxy chained to px on the same machine may well be
// asked for a loopback target that must go through px, and a loopback
// target is one the proxy refuses unless AllowTargets lists it.
type hostList struct {
	all     bool
	domains []domainRule
	ips     []ipRule
}

type domainRule struct {
	suffix    string // ".example.com"
	matchBare bool   // also "example.com" itself
	port      string // "" for any
}

type ipRule struct {
	prefix netip.Prefix
	port   string
}

// parseHostList parses a comma-separated list in NO_PROXY syntax.
func parseHostList(s string) (hostList, error) {
	var np hostList
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		if item == "*" {
			np.all = true
			continue
		}
		if pfx, err := netip.ParsePrefix(item); err == nil {
			np.ips = append(np.ips, ipRule{prefix: pfx.Masked()})
			continue
		} else if strings.Contains(item, "/") {
			return hostList{}, fmt.Errorf("%q: %v", item, err)
		}
		host, port := item, ""
		if h, p, err := net.SplitHostPort(item); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return hostList{}, fmt.Errorf("%q: port %q is not 1..65535", item, p)
			}
			host, port = h, p
		}
		if strings.Contains(host, "..") { // checked before a final dot is cut: "a.." is not "a."
			return hostList{}, fmt.Errorf("%q: an empty label (\"..\") is not a host name", item)
		}
		host = strings.TrimSuffix(host, ".")
		if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			ip = ip.Unmap()
			np.ips = append(np.ips, ipRule{prefix: netip.PrefixFrom(ip, ip.BitLen()), port: port})
			continue
		}
		rule := domainRule{port: port, matchBare: true}
		switch {
		case strings.HasPrefix(host, "*."):
			host, rule.matchBare = host[1:], false
		case strings.HasPrefix(host, "."):
			rule.matchBare = false
		default:
			host = "." + host
		}
		if len(host) < 2 || strings.ContainsAny(host, " \t*/@[]") || strings.Contains(host, "..") {
			return hostList{}, fmt.Errorf("%q is not a host name, IP address or CIDR prefix", item)
		}
		rule.suffix = host
		np.domains = append(np.domains, rule)
	}
	return np, nil
}

// match reports whether a target host (a name or IP address, no brackets)
// and port match the list.
func (np hostList) match(host, port string) bool {
	return np.all || np.matchRule(host, port, false)
}

// matchPort reports whether a rule that names port matches host and port:
// "*" and rules for any port do not count.
func (np hostList) matchPort(host, port string) bool {
	return np.matchRule(host, port, true)
}

// matchRule reports whether a domain or IP rule matches host and port;
// with named, only a rule that names the port.
func (np hostList) matchRule(host, port string, named bool) bool {
	portOK := func(p string) bool { return p == port || (p == "" && !named) }
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		for _, r := range np.ips {
			if portOK(r.port) && r.prefix.Contains(ip) {
				return true
			}
		}
		return false
	}
	for _, r := range np.domains {
		if !portOK(r.port) {
			continue
		}
		if strings.HasSuffix(host, r.suffix) || (r.matchBare && host == r.suffix[1:]) {
			return true
		}
	}
	return false
}

// route decides how to reach host:port: the upstream to use (nil for
// direct) and what decided it.
func (p *Proxy) route(host, port string) (*url.URL, pxperfv1.DecisionSource) {
	switch {
	case p.cfg.Upstream == nil:
		return nil, pxperfv1.DecisionSource_DECISION_SOURCE_DEFAULT
	case p.noProxy.match(host, port):
		return nil, pxperfv1.DecisionSource_DECISION_SOURCE_NO_PROXY
	}
	return p.cfg.Upstream, pxperfv1.DecisionSource_DECISION_SOURCE_MANUAL
}

// defaultPort is the port of a URL scheme when the URL gives none.
func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
