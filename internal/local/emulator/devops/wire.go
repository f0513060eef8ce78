package devops

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// API version the emulator answers with, and the resource id Entra tokens must carry.
const (
	// ResourceID is the Azure DevOps application id: the audience of Entra tokens accepted
	// by the PAT lifecycle and token-admin APIs.
	ResourceID = "499b84ac-1321-427f-aa17-267ca6975798"

	maxTop        = 100
	maxBody       = 64 << 10
	maxNameLength = 256
)

// patTokenError values (SessionTokenError in the REST spec) that the emulator produces.
const (
	errNone                   = "none"
	errDisplayNameRequired    = "displayNameRequired"
	errInvalidDisplayName     = "invalidDisplayName"
	errInvalidValidTo         = "invalidValidTo"
	errInvalidScope           = "invalidScope"
	errAccessDenied           = "accessDenied"
	errAuthorizationNotFound  = "authorizationNotFound"
	errInvalidAuthorizationID = "invalidAuthorizationId"
	errGlobalPolicy           = "globalPatPolicyViolation"
	errFullScopePolicy        = "fullScopePatPolicyViolation"
)

// wirePAT is PatToken in the REST spec. Token is a pointer so that it is serialised as
// null everywhere except the create response, as the service does.
type wirePAT struct {
	DisplayName     string   `json:"displayName"`
	ValidTo         string   `json:"validTo"`
	Scope           string   `json:"scope"`
	TargetAccounts  []string `json:"targetAccounts"`
	ValidFrom       string   `json:"validFrom"`
	AuthorizationID string   `json:"authorizationId"`
	Token           *string  `json:"token"`
}

// patTokenResult is PatTokenResult.
type patTokenResult struct {
	PatToken      *wirePAT `json:"patToken"`
	PatTokenError string   `json:"patTokenError"`
}

// pagedPatTokens is PagedPatTokens.
type pagedPatTokens struct {
	ContinuationToken string    `json:"continuationToken"`
	PatTokens         []wirePAT `json:"patTokens"`
}

// sessionToken is the token-admin SessionToken.
type sessionToken struct {
	AccessID            string            `json:"accessId"`
	AlternateToken      *string           `json:"alternateToken"`
	AuthorizationID     string            `json:"authorizationId"`
	Claims              map[string]string `json:"claims"`
	ClientID            string            `json:"clientId"`
	DisplayName         string            `json:"displayName"`
	HostAuthorizationID string            `json:"hostAuthorizationId"`
	IsPublic            bool              `json:"isPublic"`
	IsValid             bool              `json:"isValid"`
	PublicData          *string           `json:"publicData"`
	Scope               string            `json:"scope"`
	Source              *string           `json:"source"`
	TargetAccounts      []string          `json:"targetAccounts"`
	Token               *string           `json:"token"`
	UserID              string            `json:"userId"`
	ValidFrom           string            `json:"validFrom"`
	ValidTo             string            `json:"validTo"`
}

// pagedSessionTokens is the token-admin list page.
type pagedSessionTokens struct {
	Value             []sessionToken `json:"value"`
	ContinuationToken *string        `json:"continuationToken"`
}

// vssError is the error body every VSS service returns (WrappedException).
type vssError struct {
	ID             string  `json:"$id"`
	InnerException *string `json:"innerException"`
	Message        string  `json:"message"`
	TypeName       string  `json:"typeName"`
	TypeKey        string  `json:"typeKey"`
	ErrorCode      int     `json:"errorCode"`
	EventID        int     `json:"eventId"`
}

// createRequest is PatTokenCreateRequest.
type createRequest struct {
	DisplayName string
	Scope       string
	ValidTo     time.Time // zero when omitted
	AllOrgs     bool
}

// updateRequest is PatTokenUpdateRequest; nil fields are left unchanged.
type updateRequest struct {
	AuthorizationID string
	DisplayName     *string
	Scope           *string
	ValidTo         *time.Time
	AllOrgs         *bool
}

// decodeCreateRequest parses a create body. Unknown fields are ignored as the service
// does; wrong JSON types are errors naming the field.
func decodeCreateRequest(body []byte) (createRequest, error) {
	var raw struct {
		DisplayName *string `json:"displayName"`
		Scope       *string `json:"scope"`
		ValidTo     *string `json:"validTo"`
		AllOrgs     *bool   `json:"allOrgs"`
	}
	if err := decodeJSON(body, &raw); err != nil {
		return createRequest{}, err
	}
	var req createRequest
	if raw.DisplayName != nil {
		req.DisplayName = *raw.DisplayName
	}
	if raw.Scope != nil {
		req.Scope = *raw.Scope
	}
	if raw.AllOrgs != nil {
		req.AllOrgs = *raw.AllOrgs
	}
	if raw.ValidTo != nil && *raw.ValidTo != "" {
		t, err := parseTime(*raw.ValidTo)
		if err != nil {
			return createRequest{}, fmt.Errorf("validTo: %w", err)
		}
		req.ValidTo = t
	}
	return req, nil
}

// decodeUpdateRequest parses an update body.
func decodeUpdateRequest(body []byte) (updateRequest, error) {
	var raw struct {
		AuthorizationID *string `json:"authorizationId"`
		DisplayName     *string `json:"displayName"`
		Scope           *string `json:"scope"`
		ValidTo         *string `json:"validTo"`
		AllOrgs         *bool   `json:"allOrgs"`
	}
	if err := decodeJSON(body, &raw); err != nil {
		return updateRequest{}, err
	}
	req := updateRequest{DisplayName: raw.DisplayName, Scope: raw.Scope, AllOrgs: raw.AllOrgs}
	if raw.AuthorizationID != nil {
		req.AuthorizationID = *raw.AuthorizationID
	}
	if raw.ValidTo != nil && *raw.ValidTo != "" {
		t, err := parseTime(*raw.ValidTo)
		if err != nil {
			return updateRequest{}, fmt.Errorf("validTo: %w", err)
		}
		req.ValidTo = &t
	}
	return req, nil
}

// decodeRevocations parses the token-admin revocation body: an array of
// {"authorizationId": guid}.
func decodeRevocations(body []byte) ([]string, error) {
	var raw []struct {
		AuthorizationID string `json:"authorizationId"`
	}
	if err := decodeJSON(body, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("body must be a JSON array of {\"authorizationId\": guid}")
	}
	ids := make([]string, 0, len(raw))
	for i, r := range raw {
		id, err := uuid.Parse(r.AuthorizationID)
		if err != nil {
			return nil, fmt.Errorf("[%d].authorizationId %q is not a GUID", i, r.AuthorizationID)
		}
		ids = append(ids, id.String())
	}
	return ids, nil
}

func decodeJSON(body []byte, v any) error {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("body is not valid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("body has data after the JSON value")
	}
	return nil
}

// Display filters and sort orders of the list operation.
var (
	displayFilters = []string{"active", "revoked", "expired", "all"}
	sortOrders     = []string{"displayName", "displayDate", "status"}
)

// listQuery is the parsed query of a list request.
type listQuery struct {
	Filter    string
	SortBy    string
	Ascending bool
	Top       int
	Offset    int // from the continuation token
}

// parseListQuery parses and validates the list query. Enum values match
// case-insensitively (the service binds them like .NET enums).
func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{Filter: "active", SortBy: "displayDate", Ascending: true, Top: maxTop}
	var err error
	if v := qget(q, "displayFilterOption"); v != "" {
		if lq.Filter, err = enumValue("displayFilterOption", v, displayFilters); err != nil {
			return listQuery{}, err
		}
	}
	if v := qget(q, "sortByOption"); v != "" {
		if lq.SortBy, err = enumValue("sortByOption", v, sortOrders); err != nil {
			return listQuery{}, err
		}
	}
	if v := qget(q, "isSortAscending"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return listQuery{}, fmt.Errorf("isSortAscending %q is not true or false", v)
		}
		lq.Ascending = b
	}
	if v := qget(q, "$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTop {
			return listQuery{}, fmt.Errorf("$top %q must be a whole number from 1 to %d", v, maxTop)
		}
		lq.Top = n
	}
	if v := qget(q, "continuationToken"); v != "" {
		ct, err := decodeContinuation(v)
		if err != nil {
			return listQuery{}, err
		}
		if ct.Filter != lq.Filter || ct.SortBy != lq.SortBy || ct.Ascending != lq.Ascending {
			return listQuery{}, errors.New("continuationToken was issued for different filtering options; subsequent calls must supply the same displayFilterOption, sortByOption and isSortAscending")
		}
		lq.Offset = ct.Offset
	}
	return lq, nil
}

// qget reads a query parameter with a case-insensitive name, as ASP.NET binds them.
func qget(q url.Values, name string) string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func enumValue(name, v string, allowed []string) (string, error) {
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a, nil
		}
	}
	return "", fmt.Errorf("%s %q is not one of %s", name, v, strings.Join(allowed, ", "))
}

// continuation is what the opaque continuation token carries: where the next page
// starts and the filters it was issued for (the service requires the same ones).
type continuation struct {
	Offset    int    `json:"o"`
	Filter    string `json:"f"`
	SortBy    string `json:"s"`
	Ascending bool   `json:"a"`
}

func encodeContinuation(c continuation) string {
	b, _ := json.Marshal(c) // plain struct: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinuation(s string) (continuation, error) {
	bad := fmt.Errorf("continuationToken %q is not a token this service issued", truncate(s, 40))
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return continuation{}, bad
	}
	var c continuation
	if err := json.Unmarshal(b, &c); err != nil || c.Offset < 0 {
		return continuation{}, bad
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseBasicAuth extracts the password of a Basic Authorization header; Azure DevOps
// ignores the user name of a PAT credential.
func parseBasicAuth(header string) (string, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", errors.New("authorization header is not Basic")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", errors.New("basic credentials are not valid base64")
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", errors.New("basic credentials have no ':' separator")
	}
	if pass == "" {
		return "", errors.New("basic credentials have an empty password")
	}
	return pass, nil
}

// parseTime accepts .NET round-trip timestamps (up to 7 fractional digits) with or
// without a zone designator; a missing zone means UTC, as the service assumes.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 timestamp", truncate(s, 40))
}

// formatTime writes the .NET round-trip form the service uses, after SQL datetime-like
// rounding to milliseconds (trailing zeros dropped: "…23.32Z").
func formatTime(t time.Time) string {
	return t.UTC().Round(time.Millisecond).Format("2006-01-02T15:04:05.9999999Z")
}
