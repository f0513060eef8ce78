// Package devops is patrol's client for the Azure DevOps PAT lifecycle management API,
// the token-admin API and connectionData (to verify a PAT).
//
// It is hand-written on net/http because no maintained Go library covers these APIs:
// the official github.com/microsoft/azure-devops-go-api is unmaintained, and it would
// not give us what rotation needs anyway — it does not treat an HTTP 200 carrying a
// patTokenError as a failure, does not classify errors as permanent or transient, does
// not honour Retry-After, and follows redirects to the sign-in page. This client is
// small and typed instead:
//
//   - it sends X-TFS-FedAuthRedirect: Suppress and never follows redirects, so a refused
//     credential is a clear ErrUnauthorized instead of a 203/302 sign-in page;
//   - it strips a UTF-8 byte-order mark from responses and reads X-TFS-ServiceError;
//   - every patTokenError other than "none" is an *Error carrying the code; policy
//     violations and invalid input are permanent (errors.Is(err, ErrPermanent)),
//     throttling, 5xx and network failures transient with the server's Retry-After;
//   - PAT values are secret.Value, which never prints, logs or marshals its value.
//
// Decision: one request per call, no retry loop. The rotation core retries transient
// failures per protocol step, honouring the Retry-After this client reads into Error,
// and cleans up the PATs of a create whose answer was lost before creating again
// (rotation's retry.go, docs/architecture.md "Retries"). A loop here, with its own
// clean-up, was never switched on in production.
package devops

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/rules"
	"github.com/patrol-dev/patrol/internal/secret"
)

// Default service endpoints.
const (
	DefaultVSSPSURL = "https://vssps.dev.azure.com" // PAT lifecycle and token admin
	DefaultURL      = "https://dev.azure.com"       // connectionData
	apiVersion      = "7.1-preview.1"
	pageSize        = 100 // the service's maximum $top
	maxResponse     = 4 << 20
)

// Options configure a Client.
type Options struct {
	// BaseURL overrides both service hosts (vssps.dev.azure.com and dev.azure.com), as
	// the local emulator serves both; empty = the real service.
	BaseURL string
	// HTTPClient sends the requests; its redirect policy is replaced (never follow).
	// Default: a client with a 60-second timeout.
	HTTPClient *http.Client
	// Token returns an Entra access token for the service account (a user) with the
	// Azure DevOps audience; it is called for every lifecycle and token-admin request.
	Token  func(ctx context.Context) (string, error)
	Logger *slog.Logger // default: discard
}

// Client calls Azure DevOps. It is safe for concurrent use.
type Client struct {
	vssps, dev string
	http       *http.Client
	token      func(ctx context.Context) (string, error)
	log        *slog.Logger
}

// NewClient validates the options and returns a client.
func NewClient(o Options) (*Client, error) {
	if o.Token == nil {
		return nil, errors.New("devops: Options.Token is required (an Entra user token for the service account)")
	}
	c := &Client{vssps: DefaultVSSPSURL, dev: DefaultURL, token: o.Token, log: o.Logger}
	if o.BaseURL != "" {
		u, err := url.Parse(o.BaseURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("devops: BaseURL %q must be an absolute https URL without a query", o.BaseURL)
		}
		base := strings.TrimRight(u.String(), "/")
		c.vssps, c.dev = base, base
	}
	hc := http.Client{Timeout: 60 * time.Second}
	if o.HTTPClient != nil {
		hc = *o.HTTPClient // a copy: the caller's client keeps its own redirect policy
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// CreateRequest is what a new PAT is created with; it is always scoped to the one
// organization (allOrgs:false), as global PATs are being retired.
type CreateRequest struct {
	DisplayName string
	Scope       string // space-separated vso.* scopes
	ValidTo     time.Time
}

// CreatePAT creates a PAT for the service account in org. The returned ValidTo is the
// service's (policies may clamp it silently); use it, not the requested one.
//
// After a failure that may have created the PAT anyway (5xx, a broken connection) the
// caller must look for it by display name before creating again (the core does, in its
// step 3), so display names should be unique per operation.
func (c *Client) CreatePAT(ctx context.Context, org string, req CreateRequest) (PAT, error) {
	const op = "create PAT"
	if err := checkOrg(op, org); err != nil {
		return PAT{}, err
	}
	if strings.TrimSpace(req.DisplayName) == "" || strings.TrimSpace(req.Scope) == "" || req.ValidTo.IsZero() {
		return PAT{}, invalid(op, org, "CreateRequest needs DisplayName, Scope and ValidTo")
	}
	body := map[string]any{"displayName": req.DisplayName, "scope": req.Scope,
		"validTo": req.ValidTo.UTC().Format(time.RFC3339Nano), "allOrgs": false}
	var res patTokenResult
	cl := call{op: op, org: org, method: http.MethodPost, url: c.patsURL(org, nil), body: body, bearer: true}
	if err := c.do(ctx, cl, &res); err != nil {
		return PAT{}, err
	}
	p, err := res.pat(op, org, true)
	if err != nil {
		return PAT{}, err
	}
	c.log.InfoContext(ctx, "devops: PAT created", "org", org, "authorizationId", p.AuthorizationID, "validTo", p.ValidTo)
	return p, nil
}

// GetPAT returns one of the service account's PATs (without its value); an unknown id
// is rotation.ErrNotFound.
func (c *Client) GetPAT(ctx context.Context, org, authorizationID string) (PAT, error) {
	const op = "get PAT"
	id, err := checkID(op, org, authorizationID)
	if err != nil {
		return PAT{}, err
	}
	var res patTokenResult
	cl := call{op: op, org: org, method: http.MethodGet, url: c.patsURL(org, url.Values{"authorizationId": {id}}), bearer: true}
	if err := c.do(ctx, cl, &res); err != nil {
		return PAT{}, err
	}
	return res.pat(op, org, false)
}

// RevokePAT revokes one of the service account's PATs. A PAT that does not exist (or no
// longer does) counts as revoked.
func (c *Client) RevokePAT(ctx context.Context, org, authorizationID string) error {
	const op = "revoke PAT"
	id, err := checkID(op, org, authorizationID)
	if err != nil {
		return err
	}
	cl := call{op: op, org: org, method: http.MethodDelete, url: c.patsURL(org, url.Values{"authorizationId": {id}}), bearer: true}
	if err := c.do(ctx, cl, nil); err != nil {
		if errors.Is(err, rotation.ErrNotFound) {
			return nil
		}
		return err
	}
	c.log.InfoContext(ctx, "devops: PAT revoked", "org", org, "authorizationId", id)
	return nil
}

// Status selects PATs by state when listing.
type Status string

// List filters.
const (
	Active  Status = "active"
	Revoked Status = "revoked"
	Expired Status = "expired"
	All     Status = "all"
)

// ListFilter selects and orders PATs; the zero value lists active PATs by creation date.
type ListFilter struct {
	Status     Status // default Active
	SortBy     string // "displayName", "displayDate" (default) or "status"
	Descending bool
}

// ListPATs lists the service account's PATs in org, following continuation tokens.
// Do not depend on it for correctness: some organizations refuse it (then it fails).
func (c *Client) ListPATs(ctx context.Context, org string, f ListFilter) ([]PAT, error) {
	const op = "list PATs"
	if err := checkOrg(op, org); err != nil {
		return nil, err
	}
	if f.Status == "" {
		f.Status = Active
	}
	if f.SortBy == "" {
		f.SortBy = "displayDate"
	}
	q := url.Values{"displayFilterOption": {string(f.Status)}, "sortByOption": {f.SortBy},
		"isSortAscending": {fmt.Sprint(!f.Descending)}, "$top": {fmt.Sprint(pageSize)}}
	var out []PAT
	for page := 0; ; page++ {
		var res pagedPatTokens
		if err := c.do(ctx, call{op: op, org: org, method: http.MethodGet, url: c.patsURL(org, q), bearer: true}, &res); err != nil {
			return nil, err
		}
		for _, w := range res.PatTokens {
			p, err := w.pat()
			if err != nil {
				return nil, decodeError(op, org, err)
			}
			out = append(out, p)
		}
		if res.ContinuationToken == "" || len(res.PatTokens) == 0 {
			return out, nil
		}
		if page > 10000 {
			return nil, decodeError(op, org, errors.New("continuation tokens never end"))
		}
		q.Set("continuationToken", res.ContinuationToken)
	}
}

// FindByDisplayName lists the service account's active PATs in org whose display name
// starts with prefix (patrol puts the operation id in display names).
func (c *Client) FindByDisplayName(ctx context.Context, org, prefix string) ([]PAT, error) {
	all, err := c.ListPATs(ctx, org, ListFilter{Status: Active, SortBy: "displayName"})
	if err != nil {
		return nil, err
	}
	var out []PAT
	for _, p := range all {
		if strings.HasPrefix(p.DisplayName, prefix) {
			out = append(out, p)
		}
	}
	return out, nil
}

// VerifyPAT proves a PAT works by calling connectionData in org as that PAT, and returns
// the user it authenticates as; compare User.ID with the expected service account. A
// revoked, expired or foreign PAT is ErrUnauthorized (permanent).
func (c *Client) VerifyPAT(ctx context.Context, org string, token secret.Value) (User, error) {
	const op = "verify PAT"
	if err := checkOrg(op, org); err != nil {
		return User{}, err
	}
	if token.IsZero() {
		return User{}, invalid(op, org, "the PAT is empty")
	}
	var res connectionData
	cl := call{op: op, org: org, method: http.MethodGet,
		url:   c.dev + "/" + org + "/_apis/connectionData?" + url.Values{"api-version": {apiVersion}}.Encode(),
		basic: "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token.Reveal())), pat: token.Reveal()}
	if err := c.do(ctx, cl, &res); err != nil {
		return User{}, err
	}
	u := res.AuthenticatedUser
	if u.ID == "" {
		return User{}, decodeError(op, org, errors.New("connectionData has no authenticatedUser.id"))
	}
	return User{ID: u.ID, Descriptor: u.Descriptor, SubjectDescriptor: u.SubjectDescriptor, DisplayName: u.ProviderDisplayName}, nil
}

// Whoami calls connectionData in org with the service account's Entra token and returns
// the Azure DevOps identity it authenticates as: the identity a PAT it creates must
// authenticate as (compare User.ID; Azure DevOps' id is not the Entra object id).
func (c *Client) Whoami(ctx context.Context, org string) (User, error) {
	const op = "who am I"
	if err := checkOrg(op, org); err != nil {
		return User{}, err
	}
	var res connectionData
	cl := call{op: op, org: org, method: http.MethodGet,
		url: c.dev + "/" + org + "/_apis/connectionData?" + url.Values{"api-version": {apiVersion}}.Encode(), bearer: true}
	if err := c.do(ctx, cl, &res); err != nil {
		return User{}, err
	}
	u := res.AuthenticatedUser
	if u.ID == "" {
		return User{}, decodeError(op, org, errors.New("connectionData has no authenticatedUser.id"))
	}
	return User{ID: u.ID, Descriptor: u.Descriptor, SubjectDescriptor: u.SubjectDescriptor, DisplayName: u.ProviderDisplayName}, nil
}

// AdminRevoke revokes PATs of any user in org through the token-admin API (the caller
// must be a Project Collection Administrator). Unknown ids are ignored by the service.
func (c *Client) AdminRevoke(ctx context.Context, org string, authorizationIDs []string) error {
	const op = "admin revoke PATs"
	if err := checkOrg(op, org); err != nil {
		return err
	}
	if len(authorizationIDs) == 0 {
		return nil
	}
	body := make([]map[string]string, 0, len(authorizationIDs))
	for _, raw := range authorizationIDs {
		id, err := checkID(op, org, raw)
		if err != nil {
			return err
		}
		body = append(body, map[string]string{"authorizationId": id})
	}
	u := c.vssps + "/" + org + "/_apis/tokenadmin/revocations?" + url.Values{"isPublic": {"false"}, "api-version": {apiVersion}}.Encode()
	if err := c.do(ctx, call{op: op, org: org, method: http.MethodPost, url: u, body: body, bearer: true}, nil); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "devops: PATs revoked by administrator", "org", org, "authorizationIds", authorizationIDs)
	return nil
}

// AdminListUserPATs lists every PAT (any state) of the user with subjectDescriptor in
// org through the token-admin API.
func (c *Client) AdminListUserPATs(ctx context.Context, org, subjectDescriptor string) ([]SessionToken, error) {
	const op = "admin list PATs"
	if err := checkOrg(op, org); err != nil {
		return nil, err
	}
	if subjectDescriptor == "" || strings.ContainsAny(subjectDescriptor, "/?#% ") {
		return nil, invalid(op, org, fmt.Sprintf("subject descriptor %q is not a descriptor", subjectDescriptor))
	}
	q := url.Values{"isPublic": {"false"}, "pageSize": {fmt.Sprint(pageSize)}, "api-version": {apiVersion}}
	var out []SessionToken
	for page := 0; ; page++ {
		var res pagedSessionTokens
		u := c.vssps + "/" + org + "/_apis/tokenadmin/personalaccesstokens/" + subjectDescriptor + "?" + q.Encode()
		if err := c.do(ctx, call{op: op, org: org, method: http.MethodGet, url: u, bearer: true}, &res); err != nil {
			return nil, err
		}
		for _, w := range res.Value {
			st, err := w.sessionToken()
			if err != nil {
				return nil, decodeError(op, org, err)
			}
			out = append(out, st)
		}
		if res.ContinuationToken == nil || *res.ContinuationToken == "" || len(res.Value) == 0 {
			return out, nil
		}
		if page > 10000 {
			return nil, decodeError(op, org, errors.New("continuation tokens never end"))
		}
		q.Set("continuationToken", *res.ContinuationToken)
	}
}

// FindUser resolves a person — a UPN (matched with principalName) or an Entra object id
// (matched with originId) — to the organization's Graph user through the Graph users
// API (needs vso.graph). A person who is not a member is rotation.ErrNotFound.
//
// Decision: walk the list (subjectTypes=aad) rather than ask for the storage key: the
// storage key is Azure DevOps' own id, which patrol cannot derive from the Entra object
// id, and the list is the one route that takes neither a descriptor nor a storage key.
func (c *Client) FindUser(ctx context.Context, org, person string) (GraphUser, error) {
	const op = "find user"
	if err := checkOrg(op, org); err != nil {
		return GraphUser{}, err
	}
	person = strings.TrimSpace(person)
	if person == "" {
		return GraphUser{}, invalid(op, org, "no person to look for")
	}
	q := url.Values{"subjectTypes": {"aad"}, "api-version": {apiVersion}}
	for page := 0; ; page++ {
		var res graphUsers
		var h http.Header
		u := c.vssps + "/" + org + "/_apis/graph/users?" + q.Encode()
		if err := c.do(ctx, call{op: op, org: org, method: http.MethodGet, url: u, bearer: true, header: &h}, &res); err != nil {
			return GraphUser{}, err
		}
		for _, w := range res.Value {
			if strings.EqualFold(w.PrincipalName, person) || strings.EqualFold(w.OriginID, person) {
				if w.Descriptor == "" {
					return GraphUser{}, decodeError(op, org, fmt.Errorf("graph user %q has no descriptor", w.PrincipalName))
				}
				return GraphUser(w), nil
			}
		}
		next := h.Get("X-MS-ContinuationToken")
		if next == "" || len(res.Value) == 0 {
			return GraphUser{}, &Error{Op: op, Org: org, StatusCode: http.StatusNotFound,
				Message: fmt.Sprintf("%s is not a user of organization %s", person, org), kind: rotation.ErrNotFound}
		}
		if page > 10000 {
			return GraphUser{}, decodeError(op, org, errors.New("continuation tokens never end"))
		}
		q.Set("continuationToken", next)
	}
}

func (c *Client) patsURL(org string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", apiVersion)
	return c.vssps + "/" + org + "/_apis/tokens/pats?" + q.Encode()
}

// call is one API call; do sends it once.
type call struct {
	op, org     string
	method, url string
	body        any
	bearer      bool   // authenticate with Options.Token
	basic       string // or with this Authorization header (a PAT)
	pat         string // the PAT in basic, to scrub from errors
	// header, when set, receives the response's headers (a continuation token).
	header *http.Header
}

func (c *Client) do(ctx context.Context, cl call, out any) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("devops: %s: encode request: %w", cl.op, err)
		}
	}
	return c.once(ctx, cl, payload, out)
}

// once sends the call. Whatever error it returns is scrubbed of the credential it sent
// (scrub.go): error bodies are the service's free text.
func (c *Client) once(ctx context.Context, cl call, payload []byte, out any) error {
	var sent []string
	err := c.send(ctx, cl, payload, out, &sent)
	return scrub(err, append(sent, credentialForms(cl.pat)...)...)
}

func (c *Client) send(ctx context.Context, cl call, payload []byte, out any, sent *[]string) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.url, body)
	if err != nil {
		return fmt.Errorf("devops: %s: %w", cl.op, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
	req.Header.Set("User-Agent", "patrol")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case cl.bearer:
		tok, err := c.token(ctx)
		if err != nil {
			return fmt.Errorf("devops: %s in %s: get access token: %w", cl.op, cl.org, err)
		}
		*sent = append(*sent, tok)
		req.Header.Set("Authorization", "Bearer "+tok)
	case cl.basic != "":
		req.Header.Set("Authorization", cl.basic)
	}
	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("devops: %s in %s: %w", cl.op, cl.org, ctx.Err())
		}
		// The request may or may not have reached the service.
		return &Error{Op: cl.op, Org: cl.org, Message: "request failed", Err: err, transient: true}
	}
	defer res.Body.Close()
	if cl.header != nil {
		*cl.header = res.Header
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return &Error{Op: cl.op, Org: cl.org, StatusCode: res.StatusCode, Message: "reading the response failed", Err: err, transient: true}
	}
	c.log.DebugContext(ctx, "devops: response", "op", cl.op, "org", cl.org, "status", res.StatusCode,
		"duration", time.Since(start), "rateLimitRemaining", res.Header.Get("X-RateLimit-Remaining"))
	return decodeResponse(cl.op, cl.org, res.StatusCode, res.Header, raw, out, time.Now())
}

// checkOrg accepts organization names as Azure DevOps does (rules.IsOrgName), which
// also keeps them safe in a URL path.
func checkOrg(op, org string) error {
	if !rules.IsOrgName(org) {
		return invalid(op, org, fmt.Sprintf("organization %q is not a valid Azure DevOps organization name", org))
	}
	return nil
}

func checkID(op, org, id string) (string, error) {
	if err := checkOrg(op, org); err != nil {
		return "", err
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", invalid(op, org, fmt.Sprintf("authorization id %q is not a GUID", id))
	}
	return u.String(), nil
}
