package entra

import (
	"strings"
)

// graphResource is the resource Entra assumes for a bare scope ("User.Read") or for a
// request that asks only for OpenID Connect scopes.
const graphResource = "00000003-0000-0000-c000-000000000000"

// oidcScopes are the scopes MSAL adds to every request (protocols.md §5.4); they shape the
// response (id_token, refresh token) rather than the access token.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// scopeRequest is a parsed scope parameter.
type scopeRequest struct {
	Raw      string   // exactly as sent; echoed back (MSAL's declined-scope check, §5.5)
	Resource string   // the access token's aud
	Named    []string // permission names asked for explicitly ("user_impersonation")
	Default  bool     // a resource/.default request
	OpenID   bool     // id_token wanted
	Offline  bool     // refresh token wanted
}

// parseScope splits a scope parameter into the single resource it targets and the
// permission names. "https://vault.localhost:8443/.default" targets
// "https://vault.localhost:8443"; "499b84ac-…/user_impersonation" targets the GUID. Like
// Entra, one request may target only one resource (AADSTS28000).
func parseScope(raw string) (scopeRequest, *aadError) {
	sr := scopeRequest{Raw: raw}
	for _, s := range strings.Fields(raw) {
		if oidcScopes[strings.ToLower(s)] {
			switch strings.ToLower(s) {
			case "openid":
				sr.OpenID = true
			case "offline_access":
				sr.Offline = true
			}
			continue
		}
		resource, name := splitScope(s)
		if resource == "" || name == "" {
			return scopeRequest{}, invalidScope(CodeInvalidScopeValue, "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", sanitize(s))
		}
		if sr.Resource != "" && !strings.EqualFold(sr.Resource, resource) {
			return scopeRequest{}, invalidScope(CodeMultipleResources, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", sanitize(raw))
		}
		sr.Resource = resource
		if name == ".default" {
			sr.Default = true
			continue
		}
		sr.Named = append(sr.Named, name)
	}
	if sr.Default && len(sr.Named) > 0 {
		// scopes-oidc.md: ".default can't be combined with the scopes registered in the
		// Azure portal" — Entra answers invalid_scope.
		return scopeRequest{}, invalidScope(CodeInvalidScopeValue, "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. The .default scope can't be combined with other scopes of the same resource.", sanitize(raw))
	}
	return sr, nil
}

// audience is the token's aud: the resource, or Microsoft Graph when only OpenID Connect
// scopes were asked for (as Entra does).
func (sr scopeRequest) audience() string {
	if sr.Resource == "" {
		return graphResource
	}
	return sr.Resource
}

// splitScope separates "resource/permission". The permission is the text after the last
// slash; a scope without a slash is a Microsoft Graph permission.
func splitScope(s string) (resource, name string) {
	i := strings.LastIndex(s, "/")
	if i < 0 {
		return graphResource, s
	}
	resource, name = s[:i], s[i+1:]
	if strings.HasSuffix(resource, ":/") || strings.HasSuffix(resource, ":") {
		// "https://host" has no permission part: "https:/" + "/host" is not a resource.
		return "", ""
	}
	return resource, name
}
