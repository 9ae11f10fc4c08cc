// Package buildinfo says which build of pxperf is running: its version,
// the VCS revision it was built from, and the Go that built it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"time"
)

// version is the release version. Release builds set it at link time:
//
//	go build -ldflags "-X github.com/pxperf/pxperf/internal/buildinfo.version=v1.2.3"
//
// When it is empty, [Read] takes the main module's version from the build
// info, which the go command sets from the VCS tag or a pseudo-version.
var version string

// Info describes one build.
type Info struct {
	// Version is the release or module version, "(devel)" when unknown.
	Version string
	// Revision is the VCS revision built, empty when not built from a
	// checkout.
	Revision string
	// RevisionTime is the commit time of Revision; zero when unknown.
	RevisionTime time.Time
	// Modified reports that the checkout had uncommitted changes.
	Modified bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	info := Info{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if info.Version == "" {
			info.Version = "(devel)"
		}
		return info
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			// An unparsable time is left zero: it only decorates the output.
			info.RevisionTime, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Short is the revision cut to 12 characters, as git shows it, with
// "-dirty" when the checkout was modified.
func (i Info) Short() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified && r != "" {
		r += "-dirty"
	}
	return r
}
