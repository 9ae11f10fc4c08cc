package throttle

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Mode is how a [Controller] chooses the interval between messages.
type Mode int

// The modes.
const (
	// Fixed keeps the interval at its floor.
	Fixed Mode = iota + 1
	// Adaptive grows the interval by Config.Growth, up to Config.MaxInterval,
	// while the process is under CPU or memory load or the subscriber is
	// slow to take messages, and shrinks it by Config.Shrink back towards the
	// floor when none of these holds.
	Adaptive
	// Burst doubles the interval while the ingest rate is above
	// Config.BurstThreshold and for Config.BurstCooldown after it falls back.
	Burst
)

func (m Mode) String() string {
	switch m {
	case Fixed:
		return "fixed"
	case Adaptive:
		return "adaptive"
	case Burst:
		return "burst"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrInvalidConfig is wrapped by errors about a bad [Config].
var ErrInvalidConfig = errors.New("invalid throttle config")

// Config is the throttle policy shared by all subscribers.
type Config struct {
	// Mode chooses the interval policy. Required.
	Mode Mode
	// MinInterval is the floor of the interval between two messages to a
	// subscriber; a subscriber's own rate may raise it. Required: > 0.
	MinInterval time.Duration
	// MaxInterval caps the interval adaptive mode grows to. Required: at
	// least MinInterval.
	MaxInterval time.Duration
	// Growth is the factor adaptive mode grows the interval by. Required:
	// above 1.
	Growth float64
	// Shrink is the factor adaptive mode shrinks the interval by. Required:
	// above 0 and below 1.
	Shrink float64
	// BurstThreshold is the ingest rate, in entries per second, above which
	// burst mode doubles the interval. Required: > 0.
	BurstThreshold float64
	// BurstCooldown is how long burst mode stays on after the rate falls
	// back. Not negative.
	BurstCooldown time.Duration
}

// Validate reports the first field of c that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Mode < Fixed || c.Mode > Burst:
		return fmt.Errorf("%w: Mode %d is not Fixed, Adaptive or Burst", ErrInvalidConfig, int(c.Mode))
	case c.MinInterval <= 0:
		return fmt.Errorf("%w: MinInterval must be positive, got %v", ErrInvalidConfig, c.MinInterval)
	case c.MaxInterval < c.MinInterval:
		return fmt.Errorf("%w: MaxInterval %v is below MinInterval %v", ErrInvalidConfig, c.MaxInterval, c.MinInterval)
	case !(c.Growth > 1):
		return fmt.Errorf("%w: Growth must be above 1, got %v", ErrInvalidConfig, c.Growth)
	case !(c.Shrink > 0 && c.Shrink < 1):
		return fmt.Errorf("%w: Shrink must be above 0 and below 1, got %v", ErrInvalidConfig, c.Shrink)
	case !(c.BurstThreshold > 0):
		return fmt.Errorf("%w: BurstThreshold must be positive, got %v", ErrInvalidConfig, c.BurstThreshold)
	case c.BurstCooldown < 0:
		return fmt.Errorf("%w: BurstCooldown must not be negative, got %v", ErrInvalidConfig, c.BurstCooldown)
	}
	return nil
}

// Load is what the adaptive mode reacts to, sampled for the whole process.
type Load struct {
	// High reports CPU or memory load above its high mark.
	High bool
	// Low reports CPU and memory load both below their low marks.
	Low bool
}

// Controller chooses the interval between messages to one subscriber. It
// is not safe for concurrent use: each subscriber owns one.
type Controller struct {
	cfg      Config
	floor    time.Duration // max(cfg.MinInterval, the subscriber's own)
	interval time.Duration // adaptive mode's current interval
}

// NewController returns a controller for a subscriber whose own least
// interval is own (zero for none).
func NewController(cfg Config, own time.Duration) (*Controller, error) {
	c := &Controller{}
	if err := c.SetConfig(cfg, own); err != nil {
		return nil, err
	}
	return c, nil
}

// SetConfig changes the policy live. The adaptive interval is kept, within
// the new bounds.
func (c *Controller) SetConfig(cfg Config, own time.Duration) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c.cfg = cfg
	c.floor = max(cfg.MinInterval, own)
	c.interval = min(max(c.interval, c.floor), max(cfg.MaxInterval, c.floor))
	return nil
}

// Floor returns the least interval: the hard rate cap, which priority
// flushes also keep.
func (c *Controller) Floor() time.Duration { return c.floor }

// Interval returns the interval to keep before the next message, given
// the process load, whether the subscriber was slow to take its last
// message, and whether a burst is on. In adaptive mode each call is one
// step of growth or shrinkage, so call it once per message.
func (c *Controller) Interval(load Load, slow, burst bool) time.Duration {
	switch c.cfg.Mode {
	case Adaptive:
		ceiling := max(c.cfg.MaxInterval, c.floor)
		switch {
		case load.High || slow:
			c.interval = min(scale(c.interval, c.cfg.Growth), ceiling)
		case load.Low:
			c.interval = max(scale(c.interval, c.cfg.Shrink), c.floor)
		}
		return c.interval
	case Burst:
		if burst {
			return 2 * c.floor
		}
	}
	return c.floor
}

func scale(d time.Duration, f float64) time.Duration {
	return time.Duration(math.Round(float64(d) * f))
}

// BurstDetector tracks the ingest rate against a threshold. It is safe for
// concurrent use; all subscribers share one.
type BurstDetector struct {
	mu     sync.Mutex
	until  time.Time // burst is on before this
	events uint64    // times a burst started
}

// ObserveAt records the ingest rate (entries per second) measured at now.
// A rate above threshold starts a burst, or extends it, until cooldown
// after now.
func (b *BurstDetector) ObserveAt(now time.Time, rate, threshold float64, cooldown time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rate <= threshold {
		return
	}
	if !now.Before(b.until) {
		b.events++
	}
	b.until = now.Add(cooldown)
}

// ActiveAt reports whether a burst is on at now.
func (b *BurstDetector) ActiveAt(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return now.Before(b.until)
}

// Events returns how many bursts have started.
func (b *BurstDetector) Events() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events
}
