package auth

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// IsLoopback reports whether the listen address addr ("host:port") binds
// only loopback interfaces: its host is a loopback IP (127.0.0.0/8, ::1)
// or "localhost". An empty host, 0.0.0.0 and :: bind every interface and
// are not loopback; nor is any other host name, which could resolve to
// anything. It fails only when addr is not host:port.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("listen address: %w", err)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false, nil
	}
	return ip.IsLoopback(), nil
}
