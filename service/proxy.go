package service

import (
	"fmt"
	"log/slog"
	"net/url"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/proxy"
)

// newProxy creates the recording proxy cfg asks for, publishing into svc
// in-process; nil when cfg has no proxy.listen_address.
func newProxy(cfg *pxperfv1.Config, svc *Service, log *slog.Logger) (*proxy.Proxy, error) {
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
	return proxy.New(proxy.Config{
		Listen:        pc.GetListenAddress(),
		Upstream:      upstream,
		NoProxy:       pc.GetNoProxy(),
		MaxBodySize:   int(cfg.GetMemory().GetMaxBodySize()),
		MaxConns:      int(pc.GetMaxConnections()),
		IdleTimeout:   pc.GetIdleTimeout().AsDuration(),
		RedactHeaders: cfg.GetMemory().GetRedactHeaders(),
		// Alerts from the proxy reach WatchStats streams like the
		// monitor's own.
		OnAlert: func(a *pxperfv1.Alert) { svc.monitor.Notify(a) },
	}, svc, log.With("component", "proxy"))
}

// proxyStats reports the recording proxy for GetStats; nil when it is off.
func (s *Service) proxyStats() *pxperfv1.ProxyStats {
	if s.proxy == nil {
		return nil
	}
	st := s.proxy.Stats()
	return &pxperfv1.ProxyStats{
		Requests:          st.Requests,
		Tunnels:           st.Tunnels,
		BytesIn:           st.BytesIn,
		BytesOut:          st.BytesOut,
		Errors:            st.Errors,
		Published:         st.Published,
		Dropped:           st.Dropped,
		ActiveConnections: uint64(st.ActiveConns),
		ActiveTunnels:     uint64(st.ActiveTunnels),
		Queued:            uint64(st.Queued),
	}
}

// proxyAlert is the proxy's dropped-entries alert while it holds, for
// GetStats; nil otherwise.
func (s *Service) proxyAlert() *pxperfv1.Alert {
	if s.proxy == nil {
		return nil
	}
	st := s.proxy.Stats()
	if !st.Dropping {
		return nil
	}
	return &pxperfv1.Alert{
		Name:    proxy.AlertEntriesDropped,
		Message: fmt.Sprintf("the recording proxy is dropping entries: pxperf's ingest is behind (%d dropped so far); traffic flows on", st.Dropped),
		State:   pxperfv1.AlertState_ALERT_STATE_FIRING,
		Value:   float64(st.Dropped),
	}
}
