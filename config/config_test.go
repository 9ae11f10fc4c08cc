package config

import (
	"errors"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
)

// The defaults must satisfy the contract's own rules, or GetConfig would
// return a config that UpdateConfig refuses.
func TestDefaultIsValid(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(v, Default()); err != nil {
		t.Fatalf("Default() breaks a validation rule: %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Memory.LowWater = 0.9 // above high_water 0.8
	cfg.Throttle.MaxUpdatesPerSecond = 0
	err = Validate(v, cfg)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"memory", "low_water must be below high_water", "throttle.max_updates_per_second"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
