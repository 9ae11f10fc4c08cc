package auth_test

import (
	"testing"

	"github.com/pxperf/pxperf/auth"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		want    bool
		wantErr bool
	}{
		{"127.0.0.1:7443", true, false},
		{"127.1.2.3:0", true, false},
		{"[::1]:7443", true, false},
		{"[::ffff:127.0.0.1]:7443", true, false},
		{"localhost:7443", true, false},
		{"LocalHost:7443", true, false},
		{":7443", false, false},
		{"0.0.0.0:7443", false, false},
		{"[::]:7443", false, false},
		{"10.0.0.7:7443", false, false},
		{"[fe80::1%eth0]:7443", false, false},
		{"example.com:7443", false, false},
		{"localhost.example.com:7443", false, false},
		{"127.0.0.1", false, true},
		{"", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := auth.IsLoopback(tt.addr)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got (%v, %v), want (%v, error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
