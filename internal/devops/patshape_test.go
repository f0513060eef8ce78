package devops

import (
	"regexp"
	"strings"
	"testing"
)

func TestShape(t *testing.T) {
	current := strings.Repeat("aB3", 25) + "x" + "AZDO" + "Zz9q" // 84, AZDO at 76
	tests := map[string]struct {
		in   string
		want PATFormat
	}{
		"84 letters and digits with AZDO at 76 are a current PAT":    {current, PATCurrent},
		"52 characters of lower-case base32 are a legacy PAT":        {"ntpi2ch67ci2vjzcohglogyygwo5fuyl365n2zdowwxhsys6jnoa", PATLegacy},
		"the signature one place off is not a PAT":                   {current[:75] + "AZDO" + "xZz9q", ""},
		"a trailing newline is not trimmed":                          {"ntpi2ch67ci2vjzcohglogyygwo5fuyl365n2zdowwxhsys6jnoa\n", ""},
		"base32 with an 8 or 9 is not base32":                        {"ntpi2ch67ci2vjzcohglogyygwo5fuyl365n2zdowwxhsys6jn98", ""},
		"upper-case base32 is not how legacy PATs are shown":         {strings.ToUpper("ntpi2ch67ci2vjzcohglogyygwo5fuyl365n2zdowwxhsys6jnoa"), ""},
		"a database password is nothing":                             {"Server=db;Password=hunter2", ""},
		"a current PAT with a non-alphanumeric character is not one": {current[:10] + "-" + current[11:], ""},
		"empty is nothing":                                           {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Shape(tc.in); got != tc.want {
				t.Errorf("Shape = %q, want %q", got, tc.want)
			}
		})
	}
}

// The documented shapes as regular expressions: the oracle the fuzzer holds Shape to.
var (
	currentOracle = regexp.MustCompile(`^[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}$`)
	legacyOracle  = regexp.MustCompile(`^[a-z2-7]{52}$`)
)

func FuzzShape(f *testing.F) {
	for _, s := range []string{"", "ntpi2ch67ci2vjzcohglogyygwo5fuyl365n2zdowwxhsys6jnoa", strings.Repeat("a", 76) + "AZDOabcd", "AZDO", strings.Repeat("é", 42)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := PATFormat("")
		switch {
		case currentOracle.MatchString(s):
			want = PATCurrent
		case legacyOracle.MatchString(s):
			want = PATLegacy
		}
		if got := Shape(s); got != want {
			t.Errorf("Shape(%q) = %q, want %q", s, got, want)
		}
	})
}
