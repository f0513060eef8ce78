package devhost

import (
	"fmt"
	"net/url"
	"strings"
)

// routeTemplate is an HTTP trigger route ("rotate/{secret}", "status/{secret?}") in
// the subset of ASP.NET Core route templates Functions apps use: whole-segment
// parameters, optional parameters at the end, constraints (":int", ignored except for
// matching nothing empty), defaults ("=x") and a final catch-all ("{*rest}").
type routeTemplate struct {
	segments []routeSegment
}

type routeSegment struct {
	literal  string // when not a parameter
	param    string
	optional bool
	def      string
	hasDef   bool
	catchAll bool
}

func parseRoute(route string) (routeTemplate, error) {
	route = strings.Trim(route, "/")
	var t routeTemplate
	if route == "" {
		return t, nil
	}
	seen := map[string]bool{}
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if p == "" {
			return t, fmt.Errorf("%q has an empty segment", route)
		}
		if !strings.ContainsAny(p, "{}") {
			t.segments = append(t.segments, routeSegment{literal: p})
			continue
		}
		if !strings.HasPrefix(p, "{") || !strings.HasSuffix(p, "}") || strings.Count(p, "{") != 1 || strings.Count(p, "}") != 1 {
			return t, fmt.Errorf("%q: segment %q must be a literal or a single {parameter}", route, p)
		}
		s := routeSegment{}
		body := p[1 : len(p)-1]
		if strings.HasPrefix(body, "*") {
			s.catchAll = true
			body = strings.TrimPrefix(body, "*")
			if i != len(parts)-1 {
				return t, fmt.Errorf("%q: catch-all %q must be the last segment", route, p)
			}
		}
		if k := strings.IndexByte(body, '='); k >= 0 {
			s.def, s.hasDef = body[k+1:], true
			body = body[:k]
		}
		if strings.HasSuffix(body, "?") {
			s.optional = true
			body = strings.TrimSuffix(body, "?")
		}
		if k := strings.IndexByte(body, ':'); k >= 0 {
			body = body[:k] // constraints are not enforced; a mismatch would 404 in Azure
		}
		if body == "" || !bindingNameRE.MatchString(body) {
			return t, fmt.Errorf("%q: parameter %q is not a valid name", route, p)
		}
		if seen[strings.ToLower(body)] {
			return t, fmt.Errorf("%q: parameter %q appears twice", route, body)
		}
		seen[strings.ToLower(body)] = true
		s.param = body
		t.segments = append(t.segments, s)
	}
	// Only trailing parameters may be omitted.
	for i := 0; i < len(t.segments)-1; i++ {
		if s := t.segments[i]; (s.optional || s.hasDef) && !trailingOptional(t.segments[i+1:]) {
			return t, fmt.Errorf("%q: optional parameter %q must be followed only by optional parameters", route, s.param)
		}
	}
	return t, nil
}

func trailingOptional(segs []routeSegment) bool {
	for _, s := range segs {
		if s.param == "" || !(s.optional || s.hasDef || s.catchAll) {
			return false
		}
	}
	return true
}

// match reports whether path (below the route prefix, no leading slash, still
// escaped) fits the template, and the parameter values. Literals compare
// case-insensitively, as ASP.NET routing does.
func (t routeTemplate) match(path string) (map[string]string, bool) {
	path = strings.Trim(path, "/")
	var parts []string
	if path != "" {
		parts = strings.Split(path, "/")
	}
	params := map[string]string{}
	for i, s := range t.segments {
		if i >= len(parts) {
			switch {
			case s.hasDef:
				params[s.param] = s.def
			case s.optional || s.catchAll:
			default:
				return nil, false
			}
			continue
		}
		if s.catchAll {
			v, err := url.PathUnescape(strings.Join(parts[i:], "/"))
			if err != nil {
				return nil, false
			}
			params[s.param] = v
			return params, true
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil {
			return nil, false
		}
		if s.param == "" {
			if !strings.EqualFold(v, s.literal) {
				return nil, false
			}
			continue
		}
		if v == "" {
			return nil, false
		}
		params[s.param] = v
	}
	if len(parts) > len(t.segments) {
		return nil, false
	}
	return params, true
}
