package entra

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// requestedClaims is what the emulator reads from a token request's claims parameter
// (docs/emulator-fidelity.md 2.4, 2.5):
//
//   - {"access_token":{"xms_cc":{"values":["cp1"]}}}: the client declares it handles
//     claims challenges (Continuous Access Evaluation). Entra puts xms_cc in the token
//     only for resources that ask for it as an optional claim; the emulator assumes the
//     resources it serves (Key Vault, Azure DevOps) do.
//   - {"access_token":{"nbf":{"essential":true,"value":"<unix>"}}}: the claims of a CAE
//     challenge: the resource wants a token issued no earlier than that instant. The
//     emulator issues one whose nbf is that instant (never later than now). Whether Entra
//     honours it this way is unverified; what is documented is only that a client passes
//     the challenge's claims back and gets a token the resource accepts.
type requestedClaims struct {
	Capabilities []string
	NotBefore    time.Time
}

func parseRequestedClaims(raw string) requestedClaims {
	var out requestedClaims
	if raw == "" {
		return out
	}
	var c struct {
		AccessToken struct {
			XmsCC struct {
				Values []string `json:"values"`
			} `json:"xms_cc"`
			NBF struct {
				Value json.RawMessage `json:"value"`
			} `json:"nbf"`
		} `json:"access_token"`
	}
	if json.Unmarshal([]byte(raw), &c) != nil {
		return out // checkClaims already refused what is not a JSON object
	}
	for _, v := range c.AccessToken.XmsCC.Values {
		if !slices.ContainsFunc(out.Capabilities, func(x string) bool { return strings.EqualFold(x, v) }) {
			out.Capabilities = append(out.Capabilities, strings.ToLower(v))
		}
	}
	if v := strings.Trim(string(c.AccessToken.NBF.Value), `"`); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
			out.NotBefore = time.Unix(secs, 0)
		}
	}
	return out
}

// applyRequestedClaims adds to an access token's claims what the request's claims
// parameter asked for.
func applyRequestedClaims(c jwt.MapClaims, rc requestedClaims, now time.Time) {
	if len(rc.Capabilities) > 0 {
		c["xms_cc"] = rc.Capabilities
	}
	if nbf := rc.NotBefore; !nbf.IsZero() && !nbf.After(now) {
		if cur, ok := c["nbf"].(int64); ok && nbf.Unix() > cur {
			c["nbf"], c["iat"] = nbf.Unix(), nbf.Unix()
		}
	}
}
