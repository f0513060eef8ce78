package cli

import (
	"runtime/debug"
)

// version is set at build time by `patrol-dev package --release-version vX.Y.Z`
// (packaging.VersionSymbol, `go build -ldflags -X`). Empty in any other build.
var version string

// Version is what `patrol --version` prints and `patrol serve` logs: the release it was
// built as, else "devel" with the commit the Go toolchain stamped into the binary
// (a go build inside a git checkout records vcs.revision and vcs.modified; go run and
// builds outside a checkout record none).
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return develVersion(info.Settings)
}

// develVersion is "devel", "devel+<12 hex digits of the revision>", with "-dirty" when
// the tree had uncommitted changes.
func develVersion(settings []debug.BuildSetting) string {
	var rev string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "devel+" + rev
	if dirty {
		v += "-dirty"
	}
	return v
}
