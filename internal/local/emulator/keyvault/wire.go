package keyvault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Operation names, used for fault injection, the journal and RBAC.
const (
	OpSetSecret            = "SetSecret"
	OpGetSecret            = "GetSecret"
	OpUpdateSecret         = "UpdateSecret"
	OpListSecrets          = "ListSecrets"
	OpListSecretVersions   = "ListSecretVersions"
	OpDeleteSecret         = "DeleteSecret"
	OpGetDeletedSecret     = "GetDeletedSecret"
	OpListDeletedSecrets   = "ListDeletedSecrets"
	OpRecoverDeletedSecret = "RecoverDeletedSecret"
	OpPurgeDeletedSecret   = "PurgeDeletedSecret"
	OpBackupSecret         = "BackupSecret"
	OpRestoreSecret        = "RestoreSecret"
)

// route is a parsed request path.
type route struct {
	op      string
	name    string
	version string
}

// parseRoute maps a method and URL path to an operation. It checks the shape only;
// name rules are checked after authentication, as the service does.
func parseRoute(method, path string) (route, *apiError) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	// A trailing slash is meaningful on /secrets/{name}/ (the latest version) and
	// harmless on collections.
	trailing := len(segs) > 1 && segs[len(segs)-1] == ""
	if trailing {
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		if s == "" {
			return route{}, notFoundPath(path)
		}
	}
	switch {
	case len(segs) == 1 && segs[0] == "secrets":
		if method == "GET" {
			return route{op: OpListSecrets}, nil
		}
	case len(segs) == 1 && segs[0] == "deletedsecrets":
		if method == "GET" {
			return route{op: OpListDeletedSecrets}, nil
		}
	case len(segs) == 2 && segs[0] == "secrets" && segs[1] == "restore" && method == "POST":
		return route{op: OpRestoreSecret}, nil
	case len(segs) == 2 && segs[0] == "secrets":
		switch method {
		case "PUT":
			return route{op: OpSetSecret, name: segs[1]}, nil
		case "GET":
			return route{op: OpGetSecret, name: segs[1]}, nil
		case "PATCH":
			return route{op: OpUpdateSecret, name: segs[1]}, nil
		case "DELETE":
			return route{op: OpDeleteSecret, name: segs[1]}, nil
		}
	case len(segs) == 3 && segs[0] == "secrets" && segs[2] == "versions" && method == "GET":
		return route{op: OpListSecretVersions, name: segs[1]}, nil
	case len(segs) == 3 && segs[0] == "secrets" && segs[2] == "backup" && method == "POST":
		return route{op: OpBackupSecret, name: segs[1]}, nil
	case len(segs) == 3 && segs[0] == "secrets":
		switch method {
		case "GET":
			return route{op: OpGetSecret, name: segs[1], version: segs[2]}, nil
		case "PATCH":
			return route{op: OpUpdateSecret, name: segs[1], version: segs[2]}, nil
		}
	case len(segs) == 2 && segs[0] == "deletedsecrets":
		switch method {
		case "GET":
			return route{op: OpGetDeletedSecret, name: segs[1]}, nil
		case "DELETE":
			return route{op: OpPurgeDeletedSecret, name: segs[1]}, nil
		}
	case len(segs) == 3 && segs[0] == "deletedsecrets" && segs[2] == "recover" && method == "POST":
		return route{op: OpRecoverDeletedSecret, name: segs[1]}, nil
	default:
		return route{}, notFoundPath(path)
	}
	return route{}, &apiError{status: 405, code: "BadRequest", message: fmt.Sprintf("The requested resource does not support http method '%s'.", method)}
}

func notFoundPath(path string) *apiError {
	return &apiError{status: 404, code: "NotFound", message: fmt.Sprintf("The requested path %q does not name a Key Vault secrets operation.", truncate(path, 200))}
}

// wireAttributes is SecretAttributes on the wire. Times are integer Unix seconds:
// azcore's datetime.Unix unmarshals into int64, so a fractional value would break the
// SDK, and json.Number lets the decoder reject one with a clear error.
type wireAttributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays *int   `json:"recoverableDays,omitempty"`
}

type wireSecret struct {
	Value              *string           `json:"value,omitempty"`
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         wireAttributes    `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

type wireList struct {
	Value    []wireSecret `json:"value"`
	NextLink *string      `json:"nextLink"`
}

type wireError struct {
	Error wireErrorBody `json:"error"`
}

type wireErrorBody struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError *wireInner `json:"innererror,omitempty"`
}

type wireInner struct {
	Code string `json:"code"`
}

// render builds a Secret / SecretProperties / DeletedSecret body for base (the vault
// URL as the client addressed it). withVersion puts the version into id (list items
// of ListSecrets carry the bare secret id, versions-list items the versioned one).
func render(base string, sv secretView, withValue, withVersion bool) wireSecret {
	id := base + "/secrets/" + sv.name
	if withVersion {
		id += "/" + sv.version
	}
	enabled := sv.enabled
	created, updated := sv.created, sv.updated
	days := sv.recoverableDay
	ws := wireSecret{
		ID: id, ContentType: sv.contentType, Tags: sv.tags,
		Attributes: wireAttributes{
			Enabled: &enabled, NotBefore: sv.nbf, Expires: sv.exp, Created: &created, Updated: &updated,
			RecoveryLevel: recoveryLevel, RecoverableDays: &days,
		},
	}
	if len(ws.Tags) == 0 {
		ws.Tags = nil
	}
	if withValue {
		v := sv.value
		ws.Value = &v
	}
	if sv.deleted {
		ws.RecoveryID = base + "/deletedsecrets/" + sv.name
		dd, pd := sv.deletedDate, sv.purgeDate
		ws.DeletedDate, ws.ScheduledPurgeDate = &dd, &pd
	}
	return ws
}

// maxBodyBytes bounds what the decoders read: a 25k value with 15 full tags fits
// many times over, and anything larger is refused before JSON parsing.
const maxBodyBytes = 1 << 20

type rawAttributes struct {
	Enabled   *bool        `json:"enabled"`
	NotBefore *json.Number `json:"nbf"`
	Expires   *json.Number `json:"exp"`
}

func (a rawAttributes) decode() (attributes, error) {
	out := attributes{Enabled: a.Enabled}
	for _, f := range []struct {
		name string
		in   *json.Number
		out  **int64
	}{{"nbf", a.NotBefore, &out.NotBefore}, {"exp", a.Expires, &out.Expires}} {
		if f.in == nil {
			continue
		}
		n, err := strconv.ParseInt(f.in.String(), 10, 64)
		if err != nil {
			return attributes{}, fmt.Errorf("attributes.%s must be an integer number of Unix seconds, got %s", f.name, truncate(f.in.String(), 40))
		}
		*f.out = &n
	}
	return out, nil
}

func decodeObject(body []byte, into any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("the request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("the request body is not a valid JSON object: %v", err)
	}
	if dec.More() {
		return errors.New("the request body has data after the JSON object")
	}
	return nil
}

// decodeSetBody decodes a SetSecret body: {"value", "contentType", "attributes", "tags"}.
func decodeSetBody(body []byte) (setRequest, error) {
	var raw struct {
		Value       *string           `json:"value"`
		ContentType *string           `json:"contentType"`
		Attributes  *rawAttributes    `json:"attributes"`
		Tags        map[string]string `json:"tags"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return setRequest{}, err
	}
	if raw.Value == nil {
		return setRequest{}, errors.New("the property 'value' is required")
	}
	req := setRequest{value: *raw.Value, contentType: raw.ContentType, tags: raw.Tags}
	if raw.Attributes != nil {
		a, err := raw.Attributes.decode()
		if err != nil {
			return setRequest{}, err
		}
		req.attrs = a
	}
	return req, nil
}

// decodeUpdateBody decodes an UpdateSecretProperties body: {"contentType", "attributes", "tags"}.
func decodeUpdateBody(body []byte) (updateRequest, error) {
	var raw struct {
		ContentType *string         `json:"contentType"`
		Attributes  *rawAttributes  `json:"attributes"`
		Tags        json.RawMessage `json:"tags"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return updateRequest{}, err
	}
	req := updateRequest{contentType: raw.ContentType}
	if raw.Attributes != nil {
		a, err := raw.Attributes.decode()
		if err != nil {
			return updateRequest{}, err
		}
		req.attrs = a
	}
	if len(raw.Tags) > 0 && string(raw.Tags) != "null" {
		if err := json.Unmarshal(raw.Tags, &req.tags); err != nil {
			return updateRequest{}, fmt.Errorf("tags must be an object of strings: %v", err)
		}
		req.tagsSet = true
	}
	return req, nil
}

// decodeRestoreBody decodes {"value": "<base64url backup blob>"}.
func decodeRestoreBody(body []byte) ([]byte, error) {
	var raw struct {
		Value *string `json:"value"`
	}
	if err := decodeObject(body, &raw); err != nil {
		return nil, err
	}
	if raw.Value == nil || *raw.Value == "" {
		return nil, errors.New("the property 'value' (the backup blob) is required")
	}
	blob, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(*raw.Value, "="))
	if err == nil && len(blob) == 0 {
		return nil, errors.New("the property 'value' (the backup blob) is empty")
	}
	if err != nil {
		return nil, errors.New("the property 'value' is not base64url")
	}
	return blob, nil
}

// Page markers travel in $skiptoken as base64url JSON so they are opaque to clients
// (as Azure's are) and survive the SDK re-encoding the query.
type skipToken struct {
	Name string `json:"n,omitempty"` // ListSecrets / ListDeletedSecrets: last lower-case name returned
	Seq  uint64 `json:"s,omitempty"` // ListSecretVersions: last version sequence returned
}

func encodeSkipToken(t skipToken) string {
	b, _ := json.Marshal(t) // a struct of a string and a number always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSkipToken(s string) (skipToken, error) {
	if s == "" {
		return skipToken{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return skipToken{}, errors.New("the $skiptoken is not one this vault issued")
	}
	var t skipToken
	if err := json.Unmarshal(b, &t); err != nil || (t.Name == "" && t.Seq == 0) {
		return skipToken{}, errors.New("the $skiptoken is not one this vault issued")
	}
	return t, nil
}

// parseMaxResults reads the optional maxresults query parameter (1–25).
func parseMaxResults(q url.Values) (int, error) {
	s := q.Get("maxresults")
	if s == "" {
		return pageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > pageSize {
		return 0, fmt.Errorf("maxresults must be an integer from 1 to %d, got %q", pageSize, truncate(s, 20))
	}
	return n, nil
}

// nextLink builds the absolute link to the next page from the request's own host (port
// included: appending ":443" to a host with a port breaks the SDK) and api-version.
func nextLink(host, path, apiVersion string, t skipToken, maxResults int, explicitMax bool) *string {
	q := url.Values{}
	q.Set("api-version", apiVersion)
	q.Set("$skiptoken", encodeSkipToken(t))
	if explicitMax {
		q.Set("maxresults", strconv.Itoa(maxResults))
	}
	s := "https://" + host + path + "?" + q.Encode()
	return &s
}

// validAPIVersion accepts the forms Key Vault has used: "7.6", "2016-10-01",
// "2025-07-01", with an optional "-preview" or "-preview.N" suffix. Any such version is served with
// the same behaviour, because azsecrets changes its default often.
func validAPIVersion(v string) bool {
	base, preview, _ := strings.Cut(v, "-preview")
	if preview != "" && !(preview[0] == '.' && isDigits(preview[1:], 1, 2)) {
		return false
	}
	if major, minor, ok := strings.Cut(base, "."); ok {
		return isDigits(major, 1, 2) && isDigits(minor, 1, 2)
	}
	parts := strings.Split(base, "-")
	return len(parts) == 3 && isDigits(parts[0], 4, 4) && isDigits(parts[1], 2, 2) && isDigits(parts[2], 2, 2)
}

func isDigits(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
