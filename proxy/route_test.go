package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

func TestHostList(t *testing.T) {
	const list = "example.com, .sub.org, *.star.net, 10.0.0.0/8, 192.168.1.1, [::1]:8080, internal:3128, FE80::/10"
	np, err := parseHostList(list)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, port string
		want       bool
	}{
		{"example.com", "80", true},
		{"www.example.com", "443", true},
		{"EXAMPLE.com.", "80", true},
		{"notexample.com", "80", false},
		{"sub.org", "80", false},
		{"a.sub.org", "80", true},
		{"star.net", "80", false},
		{"a.b.star.net", "80", true},
		{"10.1.2.3", "80", true},
		{"11.1.2.3", "80", false},
		{"192.168.1.1", "443", true},
		{"192.168.1.2", "443", false},
		{"::1", "8080", true},
		{"::1", "80", false},
		{"internal", "3128", true},
		{"internal", "80", false},
		{"fe80::1", "80", true},
		{"127.0.0.1", "80", false}, // loopback is not special
		{"localhost", "80", false},
	} {
		if got := np.match(tc.host, tc.port); got != tc.want {
			t.Errorf("match(%q, %q) = %v; want %v", tc.host, tc.port, got, tc.want)
		}
	}
	// Only rules that name the port count for matchPort.
	for _, tc := range []struct {
		host, port string
		want       bool
	}{
		{"::1", "8080", true},
		{"::1", "80", false},
		{"internal", "3128", true},
		{"10.1.2.3", "80", false}, // a CIDR rule names no port
		{"example.com", "80", false},
	} {
		if got := np.matchPort(tc.host, tc.port); got != tc.want {
			t.Errorf("matchPort(%q, %q) = %v; want %v", tc.host, tc.port, got, tc.want)
		}
	}
	all, _ := parseHostList(" , *")
	if !all.match("anything", "1") || all.matchPort("anything", "1") {
		t.Error(`"*" does not match everything, or counts as naming a port`)
	}
	none, _ := parseHostList("")
	if none.match("example.com", "80") {
		t.Error("an empty list matches")
	}
	for _, bad := range []string{"10.0.0.0/33", "host:http", "host:0", "a b", "..x"} {
		if _, err := parseHostList(bad); err == nil {
			t.Errorf("parseHostList(%q) succeeded; want an error", bad)
		}
	}
}

func FuzzNoProxy(f *testing.F) {
	for _, s := range []string{"example.com,.x.org", "10.0.0.0/8", "[::1]:80", "*", "a:1,b:2", " , ", "*.x", "1.2.3.4:99999"} {
		f.Add(s, "www.example.com", "80")
	}
	f.Fuzz(func(t *testing.T, list, host, port string) {
		np, err := parseHostList(list)
		if err != nil {
			return
		}
		np.match(host, port)
		// Every name listed bare matches itself.
		for item := range strings.SplitSeq(list, ",") {
			item = strings.ToLower(strings.TrimSpace(item))
			if item == "" || strings.ContainsAny(item, ":/[]*") || strings.HasPrefix(item, ".") {
				continue
			}
			if !np.match(strings.TrimSuffix(item, "."), "80") {
				t.Errorf("list %q does not match its own item %q", list, item)
			}
		}
	})
}

func TestKindOf(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err         error
		viaUpstream bool
		want        pxperfv1.ErrorKind
	}{
		{refused, false, pxperfv1.ErrorKind_ERROR_KIND_CONNECT},
		{refused, true, pxperfv1.ErrorKind_ERROR_KIND_UPSTREAM},
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "nx.invalid", IsNotFound: true}}, false, pxperfv1.ErrorKind_ERROR_KIND_DNS},
		{&net.OpError{Op: "dial", Err: &net.DNSError{Err: "timeout", IsTimeout: true}}, false, pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), true, pxperfv1.ErrorKind_ERROR_KIND_TIMEOUT},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, false, pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, false, pxperfv1.ErrorKind_ERROR_KIND_TLS},
		{errors.New("unexpected EOF"), false, pxperfv1.ErrorKind_ERROR_KIND_OTHER},
	} {
		if got := kindOf(tc.err, tc.viaUpstream); got != tc.want {
			t.Errorf("kindOf(%v, upstream %v) = %v; want %v", tc.err, tc.viaUpstream, got, tc.want)
		}
	}
}
