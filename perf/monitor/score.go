package monitor

import (
	"fmt"
	"math"
	"strings"
)

// Score is the server's health, 0..100: the sum of its parts' points.
type Score struct {
	// Total is the sum of the parts' points, 0..100.
	Total float64
	// Parts are "memory", "throttling", "cleanup" and "logs", in that
	// order.
	Parts []Part
}

// Part is one part of the [Score], with the inputs behind its points.
type Part struct {
	// Name is "memory", "throttling", "cleanup" or "logs".
	Name string
	// Points are the points earned, 0..Max, rounded to hundredths.
	Points float64
	// Max is the points possible: 30, 25, 25 and 20.
	Max float64
	// Explanation is one sentence with the figures behind Points, for
	// example "RSS 120 MiB (store 30 MiB) is 24% of the 500 MiB budget
	// (full up to 50%, none from 100%): full points".
	Explanation string
}

// The points each part is worth.
const (
	memoryMax     = 30
	throttlingMax = 25
	cleanupMax    = 25
	logsMax       = 20
)

// ScoreOf scores cur, using prev (the sample before it, or the zero
// Sample for the first) for what happened in the interval between them.
// The formula is in the package documentation. It is a pure function; a
// healthy idle server scores 100.
func ScoreOf(prev, cur Sample) Score {
	parts := []Part{
		memoryPart(cur),
		throttlingPart(prev, cur),
		cleanupPart(prev, cur),
		logsPart(prev, cur),
	}
	var total float64
	for _, p := range parts {
		total += p.Points
	}
	return Score{Total: round(total), Parts: parts}
}

// explain builds a part's explanation: the figures, each penalty that
// applied, and the verdict.
type explain struct {
	b strings.Builder
}

func (e *explain) add(format string, args ...any) {
	if e.b.Len() > 0 {
		e.b.WriteString("; ")
	}
	fmt.Fprintf(&e.b, format, args...)
}

// part rounds points, floors them at 0, and finishes the explanation.
func (e *explain) part(name string, points, maxPoints float64) Part {
	points = round(min(max(points, 0), maxPoints))
	if points == maxPoints {
		e.b.WriteString(": full points")
	} else {
		fmt.Fprintf(&e.b, ": %s of %s points", num(points), num(maxPoints))
	}
	return Part{Name: name, Points: points, Max: maxPoints, Explanation: e.b.String()}
}

func memoryPart(cur Sample) Part {
	var e explain
	u, rest, ok := memoryShare(cur)
	if !ok {
		e.add("no memory allowance known")
		return e.part("memory", memoryMax, memoryMax)
	}
	e.add("%s (full up to 50%%, none from 100%%)", memoryText(cur, u, rest))
	points := memoryMax * (1 - clamp((u-0.5)/0.5))
	if cur.Memory.UnderPressure {
		e.add("the store is evicting under memory pressure: −5")
		points -= 5
	}
	return e.part("memory", points, memoryMax)
}

func throttlingPart(prev, cur Sample) Part {
	var e explain
	s, msgs := throttledShare(prev, cur)
	if msgs == 0 {
		e.add("no messages sent in the interval")
	} else {
		throttled := delta(prev.Throttle.ThrottledIntervals, cur.Throttle.ThrottledIntervals)
		e.add("%d of %d messages (%s) waited for the throttle in the interval", min(throttled, msgs), msgs, percent(s))
	}
	points := throttlingMax * (1 - s)
	if n := delta(prev.Throttle.Gaps, cur.Throttle.Gaps); n > 0 {
		e.add("%d gaps sent (subscribers fell behind memory): −5", n)
		points -= 5
	}
	if n := delta(prev.Throttle.StuckSubscribers, cur.Throttle.StuckSubscribers); n > 0 {
		e.add("%d subscribers ended as stuck: −10", n)
		points -= 10
	}
	return e.part("throttling", points, throttlingMax)
}

func cleanupPart(prev, cur Sample) Part {
	var e explain
	f, failed, total, basis := failureShare(prev, cur)
	if total == 0 {
		e.add("no cleanups yet")
	} else {
		e.add("%d of %d cleanups (%s) failed %s", failed, total, percent(f), basis)
	}
	points := cleanupMax * (1 - f)
	if n := delta(prev.Cleanup.Leaked, cur.Cleanup.Leaked); n > 0 {
		e.add("%d resources leaked (collected without cleanup) in the interval: −5", n)
		points -= 5
	}
	return e.part("cleanup", points, cleanupMax)
}

func logsPart(prev, cur Sample) Part {
	var e explain
	l := cur.Logs
	if !l.Enabled {
		e.add("archive off")
		return e.part("logs", logsMax, logsMax)
	}
	points := float64(logsMax)
	errs := delta(prev.Logs.WriteErrors, l.WriteErrors)
	dropped := delta(prev.Logs.EntriesDropped, l.EntriesDropped)
	e.add("archive on, %d write errors and %d entries dropped in the interval", errs, dropped)
	if errs > 0 {
		e.add("write errors: −8")
		points -= 8
	}
	if dropped > 0 {
		e.add("entries dropped: −6")
		points -= 6
	}
	if l.QueueCapacity > 0 {
		fill := share(l.Queued, l.QueueCapacity)
		what := fmt.Sprintf("queue %d of %d entries", l.Queued, l.QueueCapacity)
		if l.QueueBytesCapacity > 0 {
			if b := share(l.QueuedBytes, l.QueueBytesCapacity); b > fill {
				fill, what = b, fmt.Sprintf("queue %d of %d bytes of bodies", l.QueuedBytes, l.QueueBytesCapacity)
			}
		}
		if p := 4 * clamp((fill-0.5)/0.5); p > 0 {
			e.add("%s (%s) full, past 50%%: −%s", what, percent(fill), num(round(p)))
			points -= p
		} else {
			e.add("queue %s full", percent(fill))
		}
	}
	if l.MaxFiles > 0 && l.Files > l.MaxFiles {
		e.add("%d files, over the %d kept: −2", l.Files, l.MaxFiles)
		points -= 2
	}
	return e.part("logs", points, logsMax)
}

// round rounds x to hundredths.
func round(x float64) float64 {
	return math.Round(x*100) / 100
}

// num formats points without trailing zeros: 30, 17.5, 12.34.
func num(x float64) string {
	return fmt.Sprintf("%g", round(x))
}

// percent formats a share as a whole percentage: 0.237 → "24%".
func percent(share float64) string {
	return fmt.Sprintf("%.0f%%", share*100)
}

// bytesOf formats a byte count in binary units: 512 B, 1.5 KiB, 120 MiB.
func bytesOf(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + [...]string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
}
