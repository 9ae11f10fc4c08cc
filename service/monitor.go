package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pxperf/pxperf/engine"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/monitor"
	"github.com/pxperf/pxperf/perf/resources"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Optimize implements pxperfv1.PerformanceServiceServer.
func (s *Service) Optimize(ctx context.Context, req *pxperfv1.OptimizeRequest) (*pxperfv1.OptimizeResponse, error) {
	var actions []monitor.Action
	for _, a := range req.GetActions() {
		actions = append(actions, monitor.Action(a)) // same numbering: see optimizeActionsMatch
	}
	resp := &pxperfv1.OptimizeResponse{}
	for _, r := range s.engine.Monitor().Optimize(ctx, actions...) {
		summary := r.Summary
		if r.Err != nil {
			if ctx.Err() != nil {
				return nil, toStatus(ctx.Err())
			}
			summary = "failed: " + r.Err.Error()
		}
		resp.Results = append(resp.Results, &pxperfv1.OptimizeResult{
			Action:             pxperfv1.OptimizeAction(r.Action),
			Summary:            summary,
			EntriesEvicted:     r.EntriesEvicted,
			BytesFreed:         r.BytesFreed,
			FilesRotated:       r.FilesRotated,
			ResourcesReclaimed: r.ResourcesReclaimed,
		})
	}
	return resp, nil
}

// WatchStats implements pxperfv1.PerformanceServiceServer: a stats sample
// and the alerts active now at once, then a sample every interval, and
// each alert event and config change as it happens. Stats are state: a client that reads slowly gets the
// latest, never a backlog. Alert events are a log: one that falls far
// behind them is ended with RESOURCE_EXHAUSTED rather than let the server
// queue without bound. The stream is a tracked subscriber-like resource.
func (s *Service) WatchStats(req *pxperfv1.WatchStatsRequest, stream grpc.ServerStreamingServer[pxperfv1.WatchStatsResponse]) error {
	ctx, h, release, err := s.trackStream(stream.Context(), resources.Subscriber)
	if err != nil {
		return err
	}
	defer release()
	w := s.engine.Monitor().Watch()
	defer w.Close()
	updates := make(chan monitor.Update)
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Go(func() {
		for {
			u, err := w.Next(wctx)
			if err != nil {
				if errors.Is(err, monitor.ErrSlowWatcher) {
					stop()
				}
				close(updates)
				return
			}
			select {
			case updates <- u:
			case <-wctx.Done():
				close(updates)
				return
			}
		}
	})
	interval := req.GetInterval().AsDuration()
	if interval == 0 {
		interval = s.engine.Config().GetMonitor().GetStatsUpdateInterval().AsDuration()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// send sends m; a message sent is the stream's activity, so that the
	// idle sweep leaves a watched stream alone.
	send := func(m *pxperfv1.WatchStatsResponse) error {
		err := stream.Send(m)
		if err == nil {
			h.Touch(0, 0)
		}
		return err
	}
	if err := send(&pxperfv1.WatchStatsResponse{Event: &pxperfv1.WatchStatsResponse_Stats{Stats: s.engine.Stats()}}); err != nil {
		return err
	}
	// Alerts that started before the stream opened come first, so that a
	// new watcher knows them; the watcher, opened before, may bring the
	// same start again, which is skipped.
	sent := map[string]time.Time{}
	if snap, ok := s.engine.Monitor().Latest(); ok {
		for _, e := range snap.Active {
			sent[e.Name] = e.Start
			if err := send(&pxperfv1.WatchStatsResponse{Event: &pxperfv1.WatchStatsResponse_Alert{Alert: engine.AlertProto(e)}}); err != nil {
				return err
			}
		}
	}
	for {
		select {
		case <-tick.C:
			if err := send(&pxperfv1.WatchStatsResponse{Event: &pxperfv1.WatchStatsResponse_Stats{Stats: s.engine.Stats()}}); err != nil {
				return err
			}
		case u, ok := <-updates:
			if !ok {
				if ctx.Err() != nil {
					return endedStatus(ctx, "")
				}
				if wctx.Err() != nil {
					return status.Error(codes.ResourceExhausted, "this WatchStats stream fell too far behind the alert events; open a new one")
				}
				return status.Error(codes.Unavailable, "server is shutting down")
			}
			var m *pxperfv1.WatchStatsResponse
			switch {
			case u.Event != nil:
				if start, ok := sent[u.Event.Name]; ok && u.Event.Firing && start.Equal(u.Event.Start) {
					break
				}
				m = &pxperfv1.WatchStatsResponse{Event: &pxperfv1.WatchStatsResponse_Alert{Alert: engine.AlertProto(*u.Event)}}
			case u.Notice != nil:
				switch n := u.Notice.(type) {
				case *pxperfv1.ConfigChanged:
					m = &pxperfv1.WatchStatsResponse{Event: &pxperfv1.WatchStatsResponse_ConfigChanged{ConfigChanged: n}}
				case *pxperfv1.Alert: // from a component other than the monitor
					m = &pxperfv1.WatchStatsResponse{Event: &pxperfv1.WatchStatsResponse_Alert{Alert: n}}
				}
			}
			if m != nil {
				if err := send(m); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return endedStatus(ctx, "")
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "server is shutting down")
		}
	}
}
