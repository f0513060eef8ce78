package devops

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// claimsChallenge returns the claims of a Continuous Access Evaluation challenge in a
// 401's WWW-Authenticate headers, decoded from base64 to the JSON MSAL takes
// (public.WithClaims), or "" when there is none. The form is Entra's for resource
// providers: Bearer … error="insufficient_claims", claims="<base64 JSON>"
// (https://learn.microsoft.com/entra/identity-platform/claims-challenge). Azure DevOps
// documents that it sends a claims challenge but not its exact header, so any Bearer
// challenge carrying insufficient_claims and claims is accepted.
func claimsChallenge(h http.Header) string {
	for _, v := range h.Values("WWW-Authenticate") {
		params, ok := bearerParams(v)
		if !ok || !strings.EqualFold(params["error"], "insufficient_claims") || params["claims"] == "" {
			continue
		}
		raw := params["claims"]
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(raw); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "{") {
				return string(b)
			}
		}
	}
	return ""
}

// bearerParams parses `Bearer k1="v1", k2=v2` (RFC 7235 auth-params); ok is false for
// another scheme.
func bearerParams(v string) (map[string]string, bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	out := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		after = strings.TrimSpace(after)
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				break
			}
			val, rest = after[1:1+end], after[2+end:]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			rest = "," + rest
		}
		out[k] = strings.TrimSpace(val)
		rest = strings.TrimPrefix(strings.TrimSpace(rest), ",")
		rest = strings.TrimSpace(rest)
	}
	return out, true
}
