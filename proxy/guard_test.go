package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"golang.org/x/net/dns/dnsmessage"
)

// countingService is a TCP service on loopback that counts the
// connections it accepts and closes them: a stand-in for a loopback-only
// service of the host, such as pxperf's own gRPC port.
type countingService struct {
	lis      net.Listener
	accepted atomic.Int64
}

func newCountingService(t testing.TB) *countingService {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &countingService{lis: lis}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
	})
	return s
}

func (s *countingService) addr() string { return s.lis.Addr().String() }
func (s *countingService) port() string { _, p, _ := net.SplitHostPort(s.addr()); return p }

// fakeDNS serves A records on loopback UDP, name (fully qualified, with
// the final dot) to address, and answers other questions with no
// records. It returns a resolver that asks only it.
func fakeDNS(t testing.TB, records map[string]string) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if a, ok := records[strings.ToLower(q.Name.String())]; ok && q.Type == dnsmessage.TypeA {
				ip := netip.MustParseAddr(a).As4()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
			}
			msg, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(msg, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", pc.LocalAddr().String())
		},
	}
}

// status sends a GET for u through h's proxy and returns the status, with
// the body read and closed.
func (h *harness) status(t testing.TB, u string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// A plain request and a CONNECT to a target inside the host — pxperf's own
// gRPC port, another loopback service, the proxy itself, and a name that
// resolves to loopback — are answered 403, reach nothing, and are recorded
// as FAILED with error kind DENIED.
func TestGuardRefusesTargetsInsideHost(t *testing.T) {
	grpcPort := newCountingService(t) // pxperf's own listener
	other := newCountingService(t)    // another loopback-only service
	resolver := fakeDNS(t, map[string]string{"loopback.test.": "127.0.0.1"})
	h := newHarness(t, func(c *Config) {
		c.AllowTargets = ""
		c.OwnAddrs = []net.Addr{grpcPort.lis.Addr()}
		c.Resolver = resolver
	})
	tests := []struct {
		name    string
		target  string // host:port
		connect bool
		want    string // in the entry's error message
	}{
		{"own gRPC port", grpcPort.addr(), false, "one of pxperf's own listening addresses"},
		{"own gRPC port", grpcPort.addr(), true, "one of pxperf's own listening addresses"},
		{"own gRPC port by localhost", "localhost:" + grpcPort.port(), true, "one of pxperf's own listening addresses"},
		{"loopback service", other.addr(), false, "a loopback address of this host"},
		{"loopback service", other.addr(), true, "a loopback address of this host"},
		{"loopback service by localhost", "localhost:" + other.port(), false, "a loopback address of this host"},
		{"loopback service, IPv4-mapped", "[::ffff:127.0.0.1]:" + other.port(), true, "a loopback address of this host"},
		{"IPv6 loopback", "[::1]:" + other.port(), true, "a loopback address of this host"},
		{"the proxy itself", h.url.Host, true, "one of pxperf's own listening addresses"},
		{"unspecified", "0.0.0.0:" + other.port(), false, "an unspecified address"},
		{"link-local (cloud metadata)", "169.254.169.254:80", false, "a link-local address"},
		{"name resolving to loopback", "loopback.test:" + other.port(), false, "resolves to 127.0.0.1:" + other.port()},
		{"name resolving to loopback", "loopback.test:" + other.port(), true, "resolves to 127.0.0.1:" + other.port()},
	}
	for _, tc := range tests {
		kind := "GET"
		if tc.connect {
			kind = "CONNECT"
		}
		t.Run(kind+" "+tc.name, func(t *testing.T) {
			u := tc.target
			if tc.connect {
				c, _, res := rawConnect(t, h.ctx, h.url.Host, tc.target, nil)
				res.Body.Close()
				c.Close()
				if res.StatusCode != http.StatusForbidden {
					t.Errorf("CONNECT %s: %d; want 403", tc.target, res.StatusCode)
				}
			} else {
				u = "http://" + tc.target + "/secret"
				if code := h.status(t, u); code != http.StatusForbidden {
					t.Errorf("GET %s: %d; want 403", u, code)
				}
			}
			e := h.pub.wait(t, h.ctx, "denying "+u, func(e *pxperfv1.Entry) bool {
				return e.GetUrl() == u && e.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED
			})
			if e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_DENIED || !strings.Contains(e.GetError().GetMessage(), tc.want) ||
				!strings.Contains(e.GetError().GetMessage(), "proxy.allow_targets") || e.GetStatusCode() != 0 {
				t.Errorf("entry: status %d, error %v; want no status, DENIED saying %q and how to allow it", e.GetStatusCode(), e.GetError(), tc.want)
			}
		})
	}
	if n, m := grpcPort.accepted.Load(), other.accepted.Load(); n != 0 || m != 0 {
		t.Errorf("the services inside the host accepted %d and %d connections through the proxy; want none", n, m)
	}
	if s := h.p.Stats(); s.Denied != uint64(len(tests)) {
		t.Errorf("Stats.Denied = %d; want %d", s.Denied, len(tests))
	}
}

// A target inside the host through an upstream is refused before the
// upstream is asked: the upstream would reach its own loopback.
func TestGuardThroughUpstream(t *testing.T) {
	other := newCountingService(t)
	up := newUpstream(t, "", "")
	h := newHarness(t, func(c *Config) { c.AllowTargets, c.Upstream = "", up.url })
	for _, target := range []string{other.addr(), "localhost:" + other.port()} {
		if code := h.status(t, "http://"+target+"/"); code != http.StatusForbidden {
			t.Errorf("GET %s through the upstream: %d; want 403", target, code)
		}
		c, _, res := rawConnect(t, h.ctx, h.url.Host, target, nil)
		res.Body.Close()
		c.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("CONNECT %s through the upstream: %d; want 403", target, res.StatusCode)
		}
	}
	if n := up.seen.Load(); n != 0 {
		t.Errorf("the upstream was asked %d times; want never", n)
	}
}

// proxy.allow_targets opens a listed target inside the host, by address or
// name, and only what it lists; pxperf's own listeners only by their port.
func TestGuardAllowTargets(t *testing.T) {
	origin := newOrigin(t, okHandler("inside"))
	_, originPort, _ := net.SplitHostPort(origin.Listener.Addr().String())
	grpcPort := newCountingService(t)
	resolver := fakeDNS(t, map[string]string{"svc.test.": "127.0.0.1", "other.test.": "127.0.0.1"})
	tests := []struct {
		allow   string
		target  string
		connect bool
		want    int
	}{
		{"127.0.0.1:" + originPort, "127.0.0.1:" + originPort, false, http.StatusOK},
		{"127.0.0.1:" + originPort, "127.0.0.1:" + grpcPort.port(), true, http.StatusForbidden},
		{"127.0.0.1:" + originPort, "localhost:" + originPort, false, http.StatusForbidden},
		{"127.0.0.1", "127.0.0.1:" + originPort, false, http.StatusOK},
		{"127.0.0.1", "127.0.0.1:" + grpcPort.port(), true, http.StatusForbidden}, // own: only with its port
		{"127.0.0.0/8", "127.0.0.1:" + originPort, false, http.StatusOK},
		{"*", "127.0.0.1:" + originPort, false, http.StatusOK},
		{"*", "127.0.0.1:" + grpcPort.port(), true, http.StatusForbidden},
		{"localhost", "localhost:" + originPort, false, http.StatusOK},
		{"svc.test", "svc.test:" + originPort, false, http.StatusOK},
		{"svc.test", "other.test:" + originPort, false, http.StatusForbidden},
		{"127.0.0.1:" + grpcPort.port(), "127.0.0.1:" + grpcPort.port(), true, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.allow+" "+tc.target, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.AllowTargets = tc.allow
				c.OwnAddrs = []net.Addr{grpcPort.lis.Addr()}
				c.Resolver = resolver
			})
			var got int
			if tc.connect {
				c, _, res := rawConnect(t, h.ctx, h.url.Host, tc.target, nil)
				got = res.StatusCode
				res.Body.Close()
				c.Close()
			} else {
				got = h.status(t, "http://"+tc.target+"/")
			}
			if got != tc.want {
				t.Errorf("allow %q: %s %s: %d; want %d", tc.allow, map[bool]string{false: "GET", true: "CONNECT"}[tc.connect], tc.target, got, tc.want)
			}
		})
	}
	if n := grpcPort.accepted.Load(); n != 1 {
		t.Errorf("pxperf's own port accepted %d connections; want 1, when listed with its port", n)
	}
}

// The guard's judgement: what is inside the host, pxperf's own listeners
// on an unspecified address, and the allow list.
func TestGuardJudge(t *testing.T) {
	allow, err := parseHostList("127.0.0.1:8080,intranet.example,10.9.9.9:50051")
	if err != nil {
		t.Fatal(err)
	}
	g := &guard{
		allow: allow,
		localAddrs: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("10.9.9.9"), Mask: net.CIDRMask(24, 32)}}, nil
		},
	}
	g.addOwn(&net.TCPAddr{IP: net.IPv4zero, Port: 50051}, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 9090})
	for _, tc := range []struct {
		host, ip, port string
		want           string // in the refusal; "" for none
	}{
		{"example.com", "93.184.215.14", "443", ""},
		{"10.9.9.8", "10.9.9.8", "50051", ""},                                                // another host of the network
		{"10.9.9.9", "10.9.9.9", "80", ""},                                                   // this host, another port
		{"10.9.9.9", "10.9.9.9", "50051", ""},                                                // own, but listed with its port
		{"intranet.example", "192.0.2.7", "9090", "one of pxperf's own listening addresses"}, // a rule without the port
		{"192.0.2.7", "192.0.2.7", "9090", "one of pxperf's own listening addresses"},
		{"192.0.2.7", "192.0.2.7", "9091", ""},
		{"127.0.0.1", "127.0.0.1", "8080", ""},
		{"127.0.0.1", "127.0.0.1", "8081", "a loopback address of this host"},
		{"127.0.0.1", "127.0.0.1", "50051", "one of pxperf's own listening addresses"},
		{"127.0.0.2", "127.0.0.2", "8080", "a loopback address of this host"},
		{"intranet.example", "127.0.0.1", "22", ""}, // listed by name
		{"evil.example", "127.0.0.1", "22", "evil.example:22 resolves to 127.0.0.1:22"},
		{"evil.example", "::ffff:127.0.0.1", "22", "a loopback address of this host"},
		{"evil.example", "fe80::1", "22", "a link-local address"},
		{"evil.example", "0.1.2.3", "22", "an unspecified address"},
		{"evil.example", "::", "22", "an unspecified address"},
	} {
		err := g.judge(tc.host, netip.MustParseAddr(tc.ip), tc.port)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("judge(%s, %s, %s) = %v; want nil", tc.host, tc.ip, tc.port, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errDenied)):
			t.Errorf("judge(%s, %s, %s) = %v; want a refusal saying %q", tc.host, tc.ip, tc.port, err, tc.want)
		}
	}
	for _, tc := range []struct {
		host, port string
		denied     bool
	}{
		{"LOCALHOST.", "22", true},
		{"a.localhost", "22", true},
		{"[::1]", "22", true},
		{"127.0.0.1", "8080", false},
		{"localhost", "8080", true},   // listed as 127.0.0.1:8080, but localhost is ::1 too
		{"example.com", "22", false},  // names are judged when dialled
		{"evil.example", "22", false}, // names are judged when dialled
		{"169.254.169.254", "80", true},
	} {
		if err := g.checkTarget(tc.host, tc.port); (err != nil) != tc.denied {
			t.Errorf("checkTarget(%s, %s) = %v; want denied %v", tc.host, tc.port, err, tc.denied)
		}
	}
	// A direct dial must say what it is for.
	if err := g.control(context.Background(), "tcp4", "93.184.215.14:443", nil); !errors.Is(err, errDenied) {
		t.Errorf("control without a target = %v; want a refusal", err)
	}
	ex := &exchange{targetHost: "example.com"}
	if err := g.control(context.WithValue(context.Background(), exchangeKey{}, ex), "tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("control for example.com = %v; want nil", err)
	}
}
