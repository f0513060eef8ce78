package rules

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "whole days are 24-hour days", in: "14d", want: 14 * Day},
		{name: "zero days is zero", in: "0d", want: 0},
		{name: "Go syntax is accepted", in: "1h30m", want: 90 * time.Minute},
		{name: "fractional days are refused", in: "1.5d", wantErr: true},
		{name: "a bare number is refused", in: "14", wantErr: true},
		{name: "an absurd number of days is refused", in: "99999999999999d", wantErr: true},
		{name: "negative Go durations are refused", in: "-5m", wantErr: true},
		{name: "an empty string is refused", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatDurationRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{0, time.Minute, 36 * time.Hour, 14 * Day, 365 * Day} {
		got, err := ParseDuration(FormatDuration(d))
		if err != nil || got != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, got, err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, seed := range []string{"14d", "36h", "0", "-1h", "1.5d", "9999999999d"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDuration(in)
		if err == nil && d < 0 {
			t.Errorf("ParseDuration(%q) = %v, negative", in, d)
		}
	})
}

func TestIsUPN(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"a plain UPN":                            {"svc-build@contoso.com", true},
		"a UPN with dots and a sub-domain":       {"ada.lovelace@sub.contoso.co.uk", true},
		"a guest account's UPN":                  {"ada_fabrikam.com#EXT#@contoso.onmicrosoft.com", true},
		"a name without a domain":                {"svc-build", false},
		"a domain without a dot (always a typo)": {"svc@contoso", false},
		"two @":                                  {"a@b@contoso.com", false},
		"an empty local part":                    {"@contoso.com", false},
		"whitespace":                             {"svc build@contoso.com", false},
		"an address list":                        {"a@contoso.com,b@contoso.com", false},
		"a domain label ending in a hyphen":      {"svc@contoso-.com", false},
		"a name over the length bound":           {strings.Repeat("a", MaxUPNLength) + "@contoso.com", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := IsUPN(tc.in); got != tc.want {
				t.Errorf("IsUPN(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestIsOrgName(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"letters":                      {"contoso", true},
		"one character":                {"c", true},
		"letters, digits and a hyphen": {"Contoso-2", true},
		"50 characters":                {strings.Repeat("a", MaxOrgNameLength), true},
		"51 characters":                {strings.Repeat("a", MaxOrgNameLength+1), false},
		"a trailing hyphen":            {"contoso-", false},
		"a leading hyphen":             {"-contoso", false},
		"an underscore":                {"con_toso", false},
		"a dot":                        {"contoso.com", false},
		"a letter outside English":     {"contosö", false},
		"empty":                        {"", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := IsOrgName(tc.in); got != tc.want {
				t.Errorf("IsOrgName(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// The regexps the hand-written rules stand for; the fuzz test holds them together.
var (
	upnOracle     = regexp.MustCompile(`^[^@\s"<>,;]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
	orgNameOracle = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,48}[A-Za-z0-9])?$`)
)

func FuzzRulesAgreeWithTheirRegexps(f *testing.F) {
	for _, s := range []string{"svc-build@contoso.com", "a@b", "@b.c", "a@-b.c", "a@b-.c", "a b@c.d", "a\v@c.d", "x#EXT#@contoso.onmicrosoft.com", "a@b..c", "a@@b.c", "contoso", "contoso-", "-contoso", strings.Repeat("a", 50), strings.Repeat("a", 51)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsUPN(s), len(s) <= MaxUPNLength && upnOracle.MatchString(s); got != want {
			t.Errorf("IsUPN(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := IsOrgName(s), orgNameOracle.MatchString(s); got != want {
			t.Errorf("IsOrgName(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
