package buildinfo

import (
	"runtime"
	"testing"
)

func TestReadLinkTimeVersionWins(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })

	version = ""
	if got := Read(); got.Version == "" {
		t.Errorf("Read().Version is empty without a link-time version; want the module's or (devel)")
	}
	version = "v9.8.7"
	got := Read()
	if got.Version != "v9.8.7" {
		t.Errorf("Read().Version = %q, want the link-time v9.8.7", got.Version)
	}
	if got.GoVersion != runtime.Version() {
		t.Errorf("Read().GoVersion = %q, want %q", got.GoVersion, runtime.Version())
	}
}

func TestShort(t *testing.T) {
	for _, tc := range []struct {
		info Info
		want string
	}{
		{Info{}, ""},
		{Info{Modified: true}, ""},
		{Info{Revision: "abc"}, "abc"},
		{Info{Revision: "0123456789abcdef0123"}, "0123456789ab"},
		{Info{Revision: "0123456789abcdef0123", Modified: true}, "0123456789ab-dirty"},
	} {
		if got := tc.info.Short(); got != tc.want {
			t.Errorf("%+v.Short() = %q, want %q", tc.info, got, tc.want)
		}
	}
}
