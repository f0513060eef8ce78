package handlers

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
)

// Who called an HTTP function, for the audit trail of emergency rotations.
//
// Decision: the caller's identity comes only from what the platform vouches for. With
// App Service Authentication ("Easy Auth") in front, the x-ms-client-principal-name and
// -id headers are set by it (it strips them from incoming requests); without it they
// are ordinary headers anyone can send, so they count only when TrustPrincipalHeaders
// is set. The Functions host passes a custom handler the request's ClaimsIdentities
// (`Identities` in the HTTP trigger data); a request authorised by a function key
// carries the key's name in the keyid claim, so a key issued for RotateNow alone names
// whoever it was issued to. A body's `requestedBy` is the caller's own assertion: kept,
// marked as such, only when there is no platform identity to record instead.

const (
	headerPrincipalName = "X-Ms-Client-Principal-Name"
	headerPrincipalID   = "X-Ms-Client-Principal-Id"
	claimKeyID          = "http://schemas.microsoft.com/2017/07/functions/claims/keyid"
	claimAuthLevel      = "http://schemas.microsoft.com/2017/07/functions/claims/authlevel"
)

// EasyAuthEnabled reports whether App Service Authentication fronts the app:
// App Service sets WEBSITE_AUTH_ENABLED=True when it is on.
func EasyAuthEnabled(getenv func(string) string) bool {
	v, err := strconv.ParseBool(strings.TrimSpace(getenv("WEBSITE_AUTH_ENABLED")))
	return err == nil && v
}

// Claim is one claim of a ClaimsIdentity the host passes.
type Claim struct {
	Type  string `json:"Type"`
	Value string `json:"Value"`
}

// ClaimsIdentity is one of the request's identities as the Functions host serialises
// them (Json.NET's default names).
type ClaimsIdentity struct {
	AuthenticationType string  `json:"AuthenticationType"`
	IsAuthenticated    bool    `json:"IsAuthenticated"`
	Claims             []Claim `json:"Claims"`
}

// decodeIdentities reads `Identities`: an array, or (older hosts) a string holding
// one. Anything unreadable counts as no identity: it only ever adds to the trail.
func decodeIdentities(raw json.RawMessage) []ClaimsIdentity {
	v := bytes.TrimSpace(raw)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		v = []byte(s)
	}
	var ids []ClaimsIdentity
	if json.Unmarshal(v, &ids) != nil {
		return nil
	}
	return ids
}

// FunctionKeyName is the name of the function or host key that authorised the
// request ("" when none did or the host did not say).
func (r HTTPRequest) FunctionKeyName() string {
	for _, id := range r.Identities {
		for _, c := range id.Claims {
			if c.Type == claimKeyID && c.Value != "" {
				return c.Value
			}
		}
	}
	return ""
}

func (r HTTPRequest) keyAuthorised() bool {
	for _, id := range r.Identities {
		for _, c := range id.Claims {
			if c.Type == claimAuthLevel && c.Value != "" && !strings.EqualFold(c.Value, "anonymous") {
				return true
			}
		}
	}
	return false
}

// Requester is who asked, as recorded on the command, the new version's
// patrol-requested-by tag, the outcome and the log:
//   - "entra:<name> (<object id>)" from Easy Auth's headers when trusted;
//   - otherwise `function key "<name>"` when the host named the key, or "function key"
//     when it did not (a host that passes no Identities), followed by
//     ` for "<claimed>"` when the body asserted a requestedBy.
func Requester(r HTTPRequest, trustHeaders bool, claimed string) string {
	if trustHeaders {
		name, id := clean(r.Headers.Get(headerPrincipalName)), clean(r.Headers.Get(headerPrincipalID))
		switch {
		case name != "" && id != "":
			return "entra:" + name + " (" + id + ")"
		case name != "":
			return "entra:" + name
		case id != "":
			return "entra:" + id
		}
	}
	who := "function key"
	if k := clean(r.FunctionKeyName()); k != "" {
		who = "function key " + strconv.Quote(k)
	} else if len(r.Identities) > 0 && !r.keyAuthorised() {
		who = "anonymous"
	}
	if c := clean(claimed); c != "" {
		who += " for " + strconv.Quote(c)
	}
	return who
}

// clean keeps a header or claim printable and short enough for a tag.
func clean(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s))
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100])
	}
	return s
}
