package cli

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDevelVersionNamesTheCommit(t *testing.T) {
	for name, tc := range map[string]struct {
		settings []debug.BuildSetting
		want     string
	}{
		"a build with no VCS stamp is devel": {nil, "devel"},
		"a clean checkout names its commit": {
			[]debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}},
			"devel+0123456789ab"},
		"uncommitted changes are said": {
			[]debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}},
			"devel+0123456789ab-dirty"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := develVersion(tc.settings); got != tc.want {
				t.Errorf("develVersion = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersionFlagPrintsTheReleaseSetAtBuild(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	for name, tc := range map[string]struct {
		set  string
		want string
	}{
		"a release build prints its version": {"v1.2.3", "patrol version v1.2.3\n"},
		"any other build says devel":         {"", "patrol version devel"},
	} {
		t.Run(name, func(t *testing.T) {
			version = tc.set
			var out bytes.Buffer
			root := NewRoot()
			root.SetArgs([]string{"--version"})
			root.SetOut(&out)
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), tc.want) {
				t.Errorf("patrol --version printed %q, want it to start with %q", out.String(), tc.want)
			}
		})
	}
}
