// Package gateway serves a gRPC server's services over HTTP: Connect and
// gRPC-Web for browsers, streams included, and REST/JSON at the paths of the
// methods' google.api.http options (AIP-127), for curl and scripts.
//
// The gateway is [connectrpc.com/vanguard] wrapped around the *grpc.Server
// itself (vanguardgrpc): each HTTP call is transcoded into a gRPC call that
// the server handles as it handles one from its own listener, through the
// same interceptors (logging, metrics, auth, validation, recovery) and the
// same message size limits, and its status is transcoded back (an
// INVALID_ARGUMENT is HTTP 400 with its field violations in the JSON error).
//
// A gateway on a desktop is reachable by every web page the browser shows,
// so the handler [New] returns also guards the service against other pages:
//   - it answers only requests whose Host header names the gateway (see
//     [Config.AllowedHosts]), so that a page cannot reach it under a name of
//     its own that it points at the gateway's address (DNS rebinding);
//   - it sends no CORS headers unless [Config.CORSOrigins] names origins,
//     and then answers only those;
//   - it refuses requests that change something when a browser says they
//     come from another origin (net/http's [http.CrossOriginProtection]),
//     since a form or a no-cors fetch can send a POST without asking;
//   - every response carries a Content-Security-Policy that allows no
//     inline script, no plugins and no framing, with nosniff and
//     no-referrer.
//
// GET / is the browser UI (package [web]), whose script and stylesheet are
// under [web.AssetsPrefix]; every other path is the service's.
//
// Bearer tokens travel only in the Authorization header: the gRPC server's
// auth reads the metadata "authorization", which is that header. Cookies
// reach it under another name, and REST ignores query parameters that are
// not fields of the request (vanguard would otherwise answer them with
// UNKNOWN, a 500), so a token in either leaves the call unauthenticated.
package gateway

import (
	"fmt"
	"net/http"

	"connectrpc.com/vanguard"
	"connectrpc.com/vanguard/vanguardgrpc"
	"google.golang.org/grpc"

	connectcors "connectrpc.com/cors"
	"github.com/pxperf/pxperf/web"
	"github.com/rs/cors"
)

// Config is how a gateway serves. The zero value serves on loopback names
// only, without CORS, with vanguard's message limit (4 GiB: set
// MaxMessageBytes).
type Config struct {
	// ListenAddress is the address the gateway listens on, host:port, as
	// configured. Its host is allowed in Host headers, with any port; an
	// unspecified host (0.0.0.0, ::, empty) allows every IP address, since
	// the machine's addresses are not known in advance and a request that
	// names the server by its IP address cannot come through DNS
	// rebinding.
	ListenAddress string
	// AllowedHosts are further names the gateway answers to: "name" with
	// any port, or "name:port" with that port only. Case-insensitive.
	// Loopback names (localhost, loopback IP addresses) are always allowed.
	AllowedHosts []string
	// CORSOrigins are the origins ("https://ui.example:8443") whose pages
	// may call the gateway from another origin. Empty: no CORS headers,
	// and browsers refuse such calls. No wildcard.
	CORSOrigins []string
	// MaxMessageBytes is the largest request or response message the
	// gateway buffers while it transcodes; a larger one fails with
	// RESOURCE_EXHAUSTED. 0 means vanguard's default, 4 GiB.
	MaxMessageBytes uint32
}

// ContentSecurityPolicy is sent with every response: scripts, styles and
// everything else only from the gateway itself, no inline script, no
// plugins, no framing by other pages, no <base> rewriting.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// New returns a handler serving every service registered on gs, as [Config]
// and the package doc describe. Register the services before calling New:
// those registered later are not served. The handler is safe for concurrent
// use. Errors name the Config field at fault.
func New(gs *grpc.Server, cfg Config) (http.Handler, error) {
	hosts, err := newHostCheck(cfg.ListenAddress, cfg.AllowedHosts)
	if err != nil {
		return nil, err
	}
	// No JSON codec is registered with gRPC, so vanguard turns JSON into
	// the binary form the server's codec reads.
	opts := []vanguard.ServiceOption{
		vanguard.WithRESTUnmarshalOptions(vanguard.RESTUnmarshalOptions{DiscardUnknownQueryParams: true}),
	}
	if cfg.MaxMessageBytes > 0 {
		opts = append(opts, vanguard.WithMaxMessageBufferBytes(cfg.MaxMessageBytes))
	}
	transcoder, err := vanguardgrpc.NewTranscoder(gs, vanguard.WithDefaultServiceOptions(opts...))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ui, err := web.New()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", ui)
	mux.Handle("GET "+web.AssetsPrefix, ui)
	mux.Handle("/", transcoder)

	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "pxperf gateway: a cross-origin request that changes something is refused: this page's origin is not in server.http_cors_origins", http.StatusForbidden)
	}))
	for _, o := range cfg.CORSOrigins {
		if err := csrf.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("gateway: CORSOrigins: %w", err)
		}
	}
	h := csrf.Handler(mux)
	if len(cfg.CORSOrigins) > 0 {
		h = newCORS(cfg.CORSOrigins).Handler(h)
	}
	return securityHeaders(hosts.handler(h)), nil
}

// newCORS returns the CORS handling for origins: the methods and headers
// of Connect, gRPC-Web and REST, and Authorization for bearer tokens.
func newCORS(origins []string) *cors.Cors {
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: append(connectcors.AllowedMethods(), http.MethodPatch, http.MethodDelete),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
		ExposedHeaders: connectcors.ExposedHeaders(),
		// Preflights are cached for two hours, the most Chromium keeps
		// them.
		MaxAge: 7200,
	})
}

// securityHeaders sets the headers every response carries, refusals
// included.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
