package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/pxperf/pxperf/auth"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/proxy"
)

// newProxy creates the recording proxy cfg asks for, publishing into svc
// in-process; nil when cfg has no proxy.listen_address. With opts.Tokens,
// it authenticates its clients by them.
func newProxy(cfg *pxperfv1.Config, svc *Service, opts Options, log *slog.Logger) (*proxy.Proxy, error) {
	pc := cfg.GetProxy()
	if pc.GetListenAddress() == "" {
		return nil, nil
	}
	var upstream *url.URL
	if u := pc.GetUpstream(); u != "" {
		var err error
		if upstream, err = url.Parse(u); err != nil {
			return nil, fmt.Errorf("proxy.upstream: %w", err)
		}
	}
	var authenticate func(user, password string) bool
	if tokens := opts.Tokens; tokens != nil {
		authenticate = func(user, password string) bool {
			id, ok := tokens.LookupBasic(user, password)
			return ok && id.Allows(auth.RoleProxy)
		}
	}
	return proxy.New(proxy.Config{
		Listen:                  pc.GetListenAddress(),
		Upstream:                upstream,
		NoProxy:                 pc.GetNoProxy(),
		AllowTargets:            pc.GetAllowTargets(),
		OwnAddrs:                opts.ServedAddrs,
		Authenticate:            authenticate,
		MaxBodySize:             int(cfg.GetMemory().GetMaxBodySize()),
		MaxConns:                int(pc.GetMaxConnections()),
		MaxConnsPerClient:       int(pc.GetMaxConnectionsPerClient()),
		ClientRequestsPerSecond: float64(pc.GetClientRequestsPerSecond()),
		ClientRequestBurst:      int(pc.GetClientRequestBurst()),
		IdleTimeout:             pc.GetIdleTimeout().AsDuration(),
		RedactHeaders:           cfg.GetMemory().GetRedactHeaders(),
		// The monitor samples the proxy's listeners at once, so that
		// proxy_open holds from the start rather than from the next
		// interval.
		OnServe: func(net.Addr) {
			if _, err := svc.engine.Monitor().Tick(context.Background()); err != nil {
				log.Warn("monitor tick on the proxy's start skipped", "err", err)
			}
		},
		// Alerts from the proxy reach WatchStats streams like the
		// monitor's own.
		OnAlert: func(a *pxperfv1.Alert) { svc.engine.Monitor().Notify(a) },
	}, svc, log.With("component", "proxy"))
}
