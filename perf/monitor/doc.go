// Package monitor is pxperf's performance monitor: every interval it takes
// a [Sample] of every part of the server, scores it 0–100, raises and
// clears alerts with hysteresis, optimises automatically, and publishes
// the outcome to watchers.
//
// The package knows nothing of gRPC or of the components themselves: the
// service fills a [Sample] through a [Source] and carries out optimisations
// through [Actions]. [ScoreOf], [Alerts] and [Plan] are pure given their
// inputs, so they are tested from made-up samples; [Monitor] ties them
// together on a schedule.
//
// # Intervals and counters
//
// Counters in a Sample count from the server's start. Where a rate or a
// share is meant, the score, the alerts and the plan use the growth of a
// counter between the previous sample and this one (Δ below). A counter
// that went down is taken as reset, its Δ being its new value. A share
// whose denominator is 0 is 0. clamp(x) is x limited to 0..1. Points are
// rounded to hundredths and floored at 0.
//
// # Score
//
// The score is the sum of four parts, 100 in all; a healthy idle server
// scores 100. Each [Part] carries its points and a sentence with the
// figures behind them.
//
//	memory (30)      u = max(RSS, store bytes) / memory budget
//	                 30 × (1 − clamp((u − 0.5) / 0.5)), − 5 while the store is under memory pressure
//	                 (full up to half the budget, none from the whole budget; full when no budget is known)
//	throttling (25)  s = Δthrottled intervals / Δmessages sent (0 when no message was sent)
//	                 25 × (1 − s), − 5 if any gap was sent, − 10 if any subscriber was ended as stuck
//	cleanup (25)     f = Δfailed / (Δsucceeded + Δfailed); when the interval had no cleanup,
//	                 failed / (succeeded + failed) since start; 0 when there was never a cleanup
//	                 25 × (1 − f), − 5 if any resource leaked (collected without its cleanup)
//	logs (20)        20 when the archive is off; otherwise
//	                 20 − 8 if write errors grew − 6 if dropped entries grew
//	                    − 4 × clamp((queued / queue capacity − 0.5) / 0.5) − 2 if files > max files
//
// # Alerts
//
// [Alerts.Evaluate] reports transitions only: one firing [Event] when a
// condition starts and one cleared event when it ends, never one per
// tick. Share alerts clear below [ClearRatio] (0.9) of their threshold, so
// a value between the clear and raise thresholds changes nothing. With
// [DefaultThresholds]:
//
//	name                   value                                  fires at  clears at
//	memory_high            live memory besides the store          ≥ 0.8     < 0.72
//	                       / its allowance (RestShare)
//	throttled_high         s, as in the score                     ≥ 0.7     < 0.63
//	cleanup_failures_high  f, as in the score                     ≥ 0.2     < 0.18
//	score_low              the score                              < 60      ≥ 65 (MinScore + 5, at most 100)
//	archive_write_errors   Δwrite errors + Δdropped entries        > 0       an interval with none
//	stuck_subscribers      Δsubscribers ended as stuck            > 0       an interval with none
//	proxy_open             proxy listeners beyond loopback         > 0       none
//	                       without client authentication
//	cluster_disconnected   cluster mode, the node cannot publish  holds     connected
//	cluster_behind         the node's lag behind the stream       ≥ 10000,  keeping up
//	                                                              or any lag
//	                                                              and no progress
//
// memory_high does not fire while no allowance is known, nor
// archive_write_errors while the archive is off. Alerts off
// ([Thresholds].Enabled false) clears every active alert and
// raises none.
//
// # Optimisation
//
// [Plan] says which [Action]s a sample calls for: Rotate when the archive's
// current file is due, Reclaim when resources are idle, SlowThrottles under
// CPU load with subscribers, and ReleaseMemory when much free heap has not
// been returned. Evict it never calls for: the store evicts by itself, and
// more would cut its history. With Config.AutoOptimize on, each tick
// runs them and logs each [Result]'s before → after summary;
// [Monitor.Optimize] runs any or all of them now.
//
// # Watchers
//
// A [Watcher] gets every alert event and every notice ([Monitor.Notify])
// in order, and the latest snapshot: one that reads slowly skips
// snapshots, never events. One that falls more than Config.WatchQueue
// events behind is dropped with [ErrSlowWatcher]; the monitor never
// waits for a watcher.
package monitor
