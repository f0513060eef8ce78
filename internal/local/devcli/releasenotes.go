package devcli

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// newReleaseNotesCmd prints one version's section of CHANGELOG.md: the body of the
// GitHub release that .github/workflows/release.yml publishes for a tag.
func newReleaseNotesCmd() *cobra.Command {
	var changelog string
	cmd := &cobra.Command{
		Use:   "release-notes VERSION",
		Short: "Print CHANGELOG.md's section for VERSION (the release workflow's notes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(changelog)
			if err != nil {
				return err
			}
			notes, err := releaseNotes(src, args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", changelog, err)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), notes)
			return err
		},
	}
	cmd.Flags().StringVar(&changelog, "changelog", "CHANGELOG.md", "the changelog to read")
	return cmd
}

// releaseNotes returns the lines under "## [version]" up to the next "## " heading,
// trimmed. A version without a section, or with an empty one, is an error: a release
// must say what it changes.
func releaseNotes(changelog []byte, version string) (string, error) {
	heading := "## [" + version + "]"
	var out strings.Builder
	in := false
	sc := bufio.NewScanner(bytes.NewReader(changelog))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.HasPrefix(line, heading)
			continue
		}
		if in {
			out.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	notes := strings.TrimSpace(out.String())
	if notes == "" {
		return "", fmt.Errorf("no section %q with notes; add one before tagging", heading)
	}
	return notes + "\n", nil
}
