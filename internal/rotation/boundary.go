package rotation

// This file holds the security boundary's rules that the core applies to every
// rotation, whoever asked: which secrets are patrol's own internals (never rotated),
// which tags a policy may set, and the audit tags of a requested rotation
// (docs/security.md).

import (
	"maps"
	"strings"
	"unicode"
)

// Tags patrol writes on its own helper secrets and on versions written for a request.
const (
	// TagKind marks patrol's own helper secrets (token caches, the command key); its
	// value says what they hold. A secret carrying it is never rotated.
	TagKind = "patrol-kind"
	// TagRequestedBy is who asked for the rotation that wrote a version (RotateNow:
	// the caller's authenticated identity).
	TagRequestedBy = "patrol-requested-by"
	// TagRequestReason is the requester's free-text reason for that rotation.
	TagRequestReason = "patrol-request-reason"
)

// internalPrefixes name patrol's helper secrets: the service accounts' MSAL caches and
// ROPC passwords (internal/keyvault), and the command-signing key.
var internalPrefixes = []string{"patrol-msal-", "patrol-password-", "patrol-command-key"}

// IsInternalSecret reports whether a secret is one of patrol's own helper secrets,
// by name or by its patrol-kind tag. Such a secret is never rotated, never reported by
// status, and no PAT is minted for it: a refresh token or a password must not be
// overwritten with a PAT its readers could then use.
func IsInternalSecret(name string, tags map[string]string) bool {
	if _, ok := tags[TagKind]; ok {
		return true
	}
	n := strings.ToLower(name)
	for _, p := range internalPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// ReasonInternalSecret: the secret is one of patrol's own helper secrets.
const ReasonInternalSecret Reason = "internal-secret"

// policyTags are the only tags a policy (adopt) may set: everything else patrol
// writes is state it derives itself.
var policyTags = map[string]bool{
	TagManaged: true, TagOrg: true, TagScopes: true, TagServiceAccount: true,
	TagLifetime: true, TagGrace: true, TagAllowFullScope: true,
}

// PolicyOnly returns the policy tags of p, dropping anything else (state tags such as
// patrol-previous-pat-id, patrol-kind, the audit tags), so no caller can plant state —
// a planted previous-pat-id would make a stranger's PAT look like one patrol replaced.
func PolicyOnly(p map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	out := make(map[string]string, len(p))
	for k, v := range p {
		if policyTags[k] {
			out[k] = v
		}
	}
	return out
}

// AuditTags records who asked for a rotation and why on the tags of the version it
// writes, replacing what the base version carried (it was another request's). The
// requester goes in first; the free-text reason only while Key Vault's tag limit
// leaves room, since the secret's owners' own tags share the budget.
func AuditTags(tags map[string]string, trig Trigger) map[string]string {
	t := maps.Clone(tags)
	if t == nil {
		t = map[string]string{}
	}
	delete(t, TagRequestedBy)
	delete(t, TagRequestReason)
	for _, kv := range []struct{ k, v string }{{TagRequestedBy, trig.RequestedBy}, {TagRequestReason, trig.Reason}} {
		v := tagValue(kv.v)
		if v != "" && len(t) < MaxTags {
			t[kv.k] = v
		}
	}
	return t
}

// tagValue makes free text fit a tag value: printable, at most MaxTagLength bytes.
func tagValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	for len(s) > MaxTagLength {
		r := []rune(s)
		s = string(r[:len(r)-1])
	}
	return s
}

// checkInternal refuses patrol's own helper secrets before anything else is decided,
// adopt included.
func checkInternal(f Facts) (Decision, bool) {
	if !f.Input.Exists || !IsInternalSecret(f.Input.Current.Name, f.Input.Current.Tags) {
		return pass()
	}
	return skip(ReasonInternalSecret, "the secret is one of patrol's own (token cache, password or command key); it is never rotated")
}
