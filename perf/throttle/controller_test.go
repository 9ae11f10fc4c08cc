package throttle

import (
	"errors"
	"testing"
	"time"
)

func testConfig(m Mode) Config {
	return Config{
		Mode:           m,
		MinInterval:    100 * time.Millisecond,
		MaxInterval:    500 * time.Millisecond,
		Growth:         2,
		Shrink:         0.5,
		BurstThreshold: 100,
		BurstCooldown:  time.Second,
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig(Adaptive)
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"mode":      func(c *Config) { c.Mode = 0 },
		"min":       func(c *Config) { c.MinInterval = 0 },
		"max":       func(c *Config) { c.MaxInterval = time.Millisecond },
		"growth":    func(c *Config) { c.Growth = 1 },
		"shrink":    func(c *Config) { c.Shrink = 1 },
		"threshold": func(c *Config) { c.BurstThreshold = 0 },
		"cooldown":  func(c *Config) { c.BurstCooldown = -1 },
	} {
		c := good
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestFixedIgnoresSignals(t *testing.T) {
	c, err := NewController(testConfig(Fixed), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, load := range []Load{{High: true}, {Low: true}, {}} {
		if got := c.Interval(load, true, true); got != 100*time.Millisecond {
			t.Errorf("Interval(%+v) = %v, want the floor 100ms", load, got)
		}
	}
}

// The subscriber's own rate raises the floor; it never lowers it.
func TestOwnRateRaisesFloor(t *testing.T) {
	c, err := NewController(testConfig(Fixed), 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Interval(Load{}, false, false); got != 250*time.Millisecond {
		t.Errorf("Interval = %v, want 250ms", got)
	}
	if err := c.SetConfig(testConfig(Fixed), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := c.Interval(Load{}, false, false); got != 100*time.Millisecond {
		t.Errorf("Interval = %v, want the server floor 100ms", got)
	}
}

func TestAdaptiveGrowsAndShrinks(t *testing.T) {
	c, err := NewController(testConfig(Adaptive), 0)
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	steps := []struct {
		name string
		load Load
		slow bool
		want time.Duration
	}{
		{"cpu or memory high", Load{High: true}, false, 200 * ms},
		{"still high", Load{High: true}, false, 400 * ms},
		{"capped", Load{High: true}, false, 500 * ms},
		{"between the marks: hold", Load{}, false, 500 * ms},
		{"load low", Load{Low: true}, false, 250 * ms},
		{"slow subscriber grows even at low load", Load{Low: true}, true, 500 * ms},
		{"low again", Load{Low: true}, false, 250 * ms},
		{"low", Load{Low: true}, false, 125 * ms},
		{"floored", Load{Low: true}, false, 100 * ms},
	}
	for _, s := range steps {
		if got := c.Interval(s.load, s.slow, false); got != s.want {
			t.Errorf("%s: Interval = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestBurstDoublesWhileActive(t *testing.T) {
	c, err := NewController(testConfig(Burst), 0)
	if err != nil {
		t.Fatal(err)
	}
	var b BurstDetector
	t0 := time.Unix(1000, 0)
	b.ObserveAt(t0, 50, 100, time.Second) // below the threshold
	if b.ActiveAt(t0) {
		t.Fatal("burst on below the threshold")
	}
	b.ObserveAt(t0, 500, 100, time.Second)
	b.ObserveAt(t0.Add(500*time.Millisecond), 400, 100, time.Second) // extends, same burst
	for _, tc := range []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, 200 * time.Millisecond},
		{1400 * time.Millisecond, 200 * time.Millisecond},
		{1500 * time.Millisecond, 100 * time.Millisecond}, // cooldown over
	} {
		if got := c.Interval(Load{}, false, b.ActiveAt(t0.Add(tc.at))); got != tc.want {
			t.Errorf("at t0+%v: Interval = %v, want %v", tc.at, got, tc.want)
		}
	}
	b.ObserveAt(t0.Add(3*time.Second), 500, 100, time.Second)
	if b.Events() != 2 {
		t.Errorf("Events = %d, want 2", b.Events())
	}
}

// Live changes keep the adaptive interval within the new bounds.
func TestSetConfigKeepsAdaptiveInterval(t *testing.T) {
	c, err := NewController(testConfig(Adaptive), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Interval(Load{High: true}, false, false) // 200ms
	cfg := testConfig(Adaptive)
	cfg.MaxInterval = 150 * time.Millisecond
	if err := c.SetConfig(cfg, 0); err != nil {
		t.Fatal(err)
	}
	if got := c.Interval(Load{}, false, false); got != 150*time.Millisecond {
		t.Errorf("Interval after lowering the cap = %v, want 150ms", got)
	}
	if err := c.SetConfig(Config{}, 0); err == nil {
		t.Error("SetConfig(zero) succeeded")
	}
}
