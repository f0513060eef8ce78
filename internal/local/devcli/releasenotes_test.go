package devcli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleChangelog = `# Changelog

Intro.

## [v0.2.0] - 2026-12-07

### Added

- patrol --version.

## [v0.1.0] - 2026-11-28

- First.
`

func TestReleaseNotesAreTheVersionsSection(t *testing.T) {
	for name, tc := range map[string]struct {
		version, want, wantErr string
	}{
		"the newest section stops at the next heading": {version: "v0.2.0", want: "### Added\n\n- patrol --version.\n"},
		"the last section runs to the end":             {version: "v0.1.0", want: "- First.\n"},
		"a tag without a section is refused":           {version: "v0.3.0", wantErr: "## [v0.3.0]"},
		"a prefix of another version is not it":        {version: "v0.2", wantErr: "## [v0.2]"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := releaseNotes([]byte(sampleChangelog), tc.version)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("releaseNotes = %q, %v; want an error naming %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("releaseNotes = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// The repository's own changelog has notes for its newest version, in the form the
// release workflow reads.
func TestTheChangelogHasNotesForItsNewestVersion(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	var newest string
	for _, line := range strings.Split(string(src), "\n") {
		if v, ok := strings.CutPrefix(line, "## ["); ok {
			newest, _, _ = strings.Cut(v, "]")
			break
		}
	}
	if newest == "" {
		t.Fatal("CHANGELOG.md has no \"## [version]\" section")
	}
	if _, err := releaseNotes(src, newest); err != nil {
		t.Fatal(err)
	}
}
