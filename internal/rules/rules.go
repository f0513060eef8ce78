// Package rules holds the value rules that settings, Key Vault tags, queue messages and
// the CLI share: the `14d` duration syntax, PAT lifetime bounds, user principal names and
// Azure DevOps organization names. It is a leaf (standard library only) so that config,
// the rotation core and the message decoders can all import it and each rule has one
// definition: a value one of them accepts is never refused by another.
package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Day is 24 hours: the unit of the `14d` duration syntax.
const Day = 24 * time.Hour

// PAT lifetime bounds, for settings and tags alike.
const (
	// MaxLifetime is the longest PAT Azure DevOps issues ("not to exceed one year").
	MaxLifetime = 365 * Day
	// MinLifetime keeps the renew window (a third of the lifetime at most) long enough
	// for a failed rotation to be retried before the PAT expires.
	MinLifetime = time.Hour
)

// MaxDurationDays bounds the `Nd` syntax well below time.Duration's range (~292 years).
const MaxDurationDays = 100 * 365

// ParseDuration accepts Go syntax (`36h`, `90m`) or whole days (`14d`). Negative
// durations are refused: none of patrol's settings or tags means anything by them.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && days != "" && strings.Trim(days, "0123456789") == "" {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(MaxDurationDays) {
			return 0, fmt.Errorf("duration %q: too many days", s)
		}
		return time.Duration(n) * Day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want Go syntax like 36h or whole days like 14d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q: must not be negative", s)
	}
	return d, nil
}

// FormatDuration writes d the way ParseDuration reads it back, as whole days when it
// is a whole number of days.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}

// upn: a local part without whitespace, '@' or the characters that delimit addresses
// in lists ("<>,;), then a dotted DNS domain. The domain is strict because every Entra
// UPN ends in a verified domain (contoso.com, contoso.onmicrosoft.com), so "name@host"
// is always a typo. The local part is left broad: a UPN is only ever compared with
// what Entra and the patrol-owner tag record, and guest (…#EXT#) and synchronised
// accounts use characters a tight list would refuse.
//
// The rules here are hand-written rather than regexps: they run in the deployed
// handler, whose start-to-ready time counts, and a compiled bounded repetition costs
// start-up time. Fuzz tests hold each to the regexp it stands for.
func isUPN(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 {
		return false
	}
	for i := 0; i < at; i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\f', '\r', '"', '<', '>', ',', ';':
			return false
		}
	}
	return isDomain(s[at+1:])
}

// isDomain: two or more dot-separated labels of letters, digits and '-', each
// starting and ending with a letter or digit.
func isDomain(s string) bool {
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !isAlnumHyphenName(l, len(s)) {
			return false
		}
	}
	return true
}

// isAlnumHyphenName: 1 to max letters, digits and '-', starting and ending with a
// letter or digit.
func isAlnumHyphenName(s string, max int) bool {
	if len(s) < 1 || len(s) > max || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// MaxUPNLength bounds a user principal name. Entra itself stops at 113 characters; the
// bound here only keeps absurd input out of tags, logs and error messages.
const MaxUPNLength = 256

// UPNForm describes a valid user principal name, for error messages.
const UPNForm = "a user principal name such as svc-build@contoso.com"

// IsUPN reports whether s is a user principal name (name@domain.tld).
func IsUPN(s string) bool { return len(s) <= MaxUPNLength && isUPN(s) }

// orgName is Azure DevOps' rule for organization names (learn.microsoft.com, "Rename
// your organization"): letters of the English alphabet, digits and hyphens, starting
// and ending with a letter or digit, at most 50 characters.

// MaxOrgNameLength is the longest Azure DevOps organization name.
const MaxOrgNameLength = 50

// OrgNameForm describes a valid organization name, for error messages.
const OrgNameForm = "an Azure DevOps organization name (letters, digits and '-', starting and ending with a letter or digit, at most 50)"

// IsOrgName reports whether s is a valid Azure DevOps organization name.
func IsOrgName(s string) bool { return isAlnumHyphenName(s, MaxOrgNameLength) }
