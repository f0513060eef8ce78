package devops

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxLifespan is the service-wide cap on a PAT's lifetime.
const maxLifespan = 365 * 24 * time.Hour

// defaultLifespan is what the service picks when validTo is omitted.
const defaultLifespan = 30 * 24 * time.Hour

func readBody(w http.ResponseWriter, r *request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeVSS(w, http.StatusBadRequest, "InvalidArgumentValueException", "Could not read the request body.")
		return nil, false
	}
	if len(body) > maxBody {
		writeVSS(w, http.StatusRequestEntityTooLarge, "InvalidArgumentValueException", fmt.Sprintf("The request body exceeds %d bytes.", maxBody))
		return nil, false
	}
	return body, true
}

func badRequest(w http.ResponseWriter, what string, err error) {
	writeVSS(w, http.StatusBadRequest, "InvalidArgumentValueException", fmt.Sprintf("%s: %v", what, err))
}

func patError(w http.ResponseWriter, code string) {
	writeJSON(w, http.StatusOK, patTokenResult{PatTokenError: code})
}

// validScope reports whether every space-separated scope is vso.* or app_token.
func validScope(scope string) bool {
	fields := strings.Fields(scope)
	if len(fields) == 0 {
		return false
	}
	for _, f := range fields {
		if f == "app_token" {
			continue
		}
		name, ok := strings.CutPrefix(f, "vso.")
		if !ok || name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") != "" {
			return false
		}
	}
	return true
}

func fullScope(scope string) bool { return slices.Contains(strings.Fields(scope), "app_token") }

// clampValidTo applies the service-wide and policy lifespans, silently, as the service.
func clampValidTo(validTo, now time.Time, p Policies) time.Time {
	limit := maxLifespan
	if p.MaxLifespan > 0 && p.MaxLifespan < limit {
		limit = p.MaxLifespan
	}
	if validTo.After(now.Add(limit)) {
		return now.Add(limit)
	}
	return validTo
}

func allowedToCreate(p Policies, u *User) bool {
	if !p.RestrictCreation {
		return true
	}
	for _, a := range p.AllowList {
		if strings.EqualFold(a, u.UPN) || strings.EqualFold(a, u.ObjectID) {
			return true
		}
	}
	return false
}

// checkPAT validates display name and scope the way create and update share.
func checkFields(displayName, scope string, allOrgs bool, p Policies) string {
	switch {
	case strings.TrimSpace(displayName) == "":
		return errDisplayNameRequired
	case len(displayName) > maxNameLength || strings.ContainsAny(displayName, "\x00\r\n\t<>"):
		return errInvalidDisplayName
	case !validScope(scope):
		return errInvalidScope
	case allOrgs && p.NoGlobal:
		return errGlobalPolicy
	case fullScope(scope) && p.NoFullScope:
		return errFullScopePolicy
	}
	return errNone
}

func (s *Emulator) createPAT(w http.ResponseWriter, r *request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	cr, err := decodeCreateRequest(body)
	if err != nil {
		badRequest(w, "PatTokenCreateRequest", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	pol := r.org.Policies
	if !allowedToCreate(pol, r.user) {
		patError(w, errAccessDenied)
		return
	}
	if code := checkFields(cr.DisplayName, cr.Scope, cr.AllOrgs, pol); code != errNone {
		patError(w, code)
		return
	}
	validTo := cr.ValidTo
	if validTo.IsZero() {
		validTo = now.Add(defaultLifespan)
	}
	if !validTo.After(now) {
		patError(w, errInvalidValidTo)
		return
	}
	value := newTokenValue()
	p := &pat{id: uuid.NewString(), org: r.org.key(), orgID: r.org.ID, owner: r.user.ObjectID,
		displayName: cr.DisplayName, scope: strings.Join(strings.Fields(cr.Scope), " "), allOrgs: cr.AllOrgs,
		validFrom: now, validTo: clampValidTo(validTo, now, pol), hash: sha256.Sum256([]byte(value)), unpropagated: s.propagation}
	s.pats[p.id] = p
	s.byHash[p.hash] = p.id
	s.log.Info("devops emulator: PAT created", "org", r.org.Name, "user", r.user.UPN, "authorizationId", p.id)
	wp := toWire(p)
	wp.Token = &value
	writeJSON(w, http.StatusOK, patTokenResult{PatToken: &wp, PatTokenError: errNone})
}

func toWire(p *pat) wirePAT {
	return wirePAT{DisplayName: p.displayName, ValidTo: formatTime(p.validTo), Scope: p.scope,
		TargetAccounts: p.targets(), ValidFrom: formatTime(p.validFrom), AuthorizationID: p.id}
}

// ownedLocked finds a PAT of the caller visible in this organization.
func (s *Emulator) ownedLocked(r *request, id string) *pat {
	p, ok := s.pats[strings.ToLower(id)]
	if !ok || !strings.EqualFold(p.owner, r.user.ObjectID) || (!p.allOrgs && p.orgID != r.org.ID) {
		return nil
	}
	return p
}

// queriedPATLocked finds the caller's PAT named by the authorizationId query parameter,
// answering 400 or 404 itself when there is none. s.mu must be held.
func (s *Emulator) queriedPATLocked(w http.ResponseWriter, r *request) (*pat, bool) {
	raw := qget(r.URL.Query(), "authorizationId")
	id, err := uuid.Parse(raw)
	if err != nil {
		badRequest(w, "authorizationId", fmt.Errorf("%q is not a GUID", truncate(raw, 40)))
		return nil, false
	}
	p := s.ownedLocked(r, id.String())
	if p == nil {
		notFound(w, id.String())
		return nil, false
	}
	return p, true
}

func notFound(w http.ResponseWriter, id string) {
	writeVSS(w, http.StatusNotFound, "SessionTokenNotFoundException",
		fmt.Sprintf("The personal access token with authorization id %s was not found.", id))
}

func (s *Emulator) getPAT(w http.ResponseWriter, r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.queriedPATLocked(w, r)
	if !ok {
		return
	}
	wp := toWire(p)
	writeJSON(w, http.StatusOK, patTokenResult{PatToken: &wp, PatTokenError: errNone})
}

func (s *Emulator) updatePAT(w http.ResponseWriter, r *request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	ur, err := decodeUpdateRequest(body)
	if err != nil {
		badRequest(w, "PatTokenUpdateRequest", err)
		return
	}
	id, err := uuid.Parse(ur.AuthorizationID)
	if err != nil {
		patError(w, errInvalidAuthorizationID)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	p := s.ownedLocked(r, id.String())
	if p == nil || p.status(now) != StatusActive {
		// Only valid (not revoked, not expired) PATs can be updated.
		patError(w, errAuthorizationNotFound)
		return
	}
	name, scope, allOrgs, validTo := p.displayName, p.scope, p.allOrgs, p.validTo
	if ur.DisplayName != nil {
		name = *ur.DisplayName
	}
	if ur.Scope != nil {
		scope = strings.Join(strings.Fields(*ur.Scope), " ")
	}
	if ur.AllOrgs != nil {
		allOrgs = *ur.AllOrgs
	}
	if code := checkFields(name, scope, allOrgs, r.org.Policies); code != errNone {
		patError(w, code)
		return
	}
	if ur.ValidTo != nil {
		if !ur.ValidTo.After(now) {
			patError(w, errInvalidValidTo)
			return
		}
		validTo = clampValidTo(*ur.ValidTo, now, r.org.Policies)
	}
	p.displayName, p.scope, p.allOrgs, p.validTo = name, scope, allOrgs, validTo
	wp := toWire(p)
	writeJSON(w, http.StatusOK, patTokenResult{PatToken: &wp, PatTokenError: errNone})
}

func (s *Emulator) revokePAT(w http.ResponseWriter, r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.queriedPATLocked(w, r)
	if !ok {
		return
	}
	if p.revokedAt.IsZero() {
		p.revokedAt = s.clock.Now()
		s.log.Info("devops emulator: PAT revoked", "org", r.org.Name, "authorizationId", p.id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// sortPATs orders PATs for listing; ties break on authorization id so pages are stable.
func sortPATs(ps []*pat, by string, asc bool, now time.Time) {
	less := func(a, b *pat) int {
		var c int
		switch by {
		case "displayName":
			c = strings.Compare(strings.ToLower(a.displayName), strings.ToLower(b.displayName))
		case "status":
			c = strings.Compare(string(a.status(now)), string(b.status(now)))
		default: // displayDate: when the PAT became valid
			c = a.validFrom.Compare(b.validFrom)
		}
		if !asc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(a.id, b.id)
		}
		return c
	}
	slices.SortFunc(ps, less)
}

func (s *Emulator) listPATs(w http.ResponseWriter, r *request) {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		badRequest(w, "list personal access tokens", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var ps []*pat
	for _, p := range s.pats {
		if !strings.EqualFold(p.owner, r.user.ObjectID) || (!p.allOrgs && p.orgID != r.org.ID) {
			continue
		}
		if lq.Filter != "all" && string(p.status(now)) != lq.Filter {
			continue
		}
		ps = append(ps, p)
	}
	sortPATs(ps, lq.SortBy, lq.Ascending, now)
	page := pagedPatTokens{PatTokens: []wirePAT{}}
	start := min(lq.Offset, len(ps))
	end := min(start+lq.Top, len(ps))
	for _, p := range ps[start:end] {
		page.PatTokens = append(page.PatTokens, toWire(p))
	}
	if end < len(ps) {
		page.ContinuationToken = encodeContinuation(continuation{Offset: end, Filter: lq.Filter, SortBy: lq.SortBy, Ascending: lq.Ascending})
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Emulator) adminList(w http.ResponseWriter, r *request, descriptor string) {
	q := r.URL.Query()
	size := 100
	if v := qget(q, "pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			badRequest(w, "pageSize", fmt.Errorf("%q must be a whole number from 1 to 1000", truncate(v, 20)))
			return
		}
		size = n
	}
	offset := 0
	if v := qget(q, "continuationToken"); v != "" {
		ct, err := decodeContinuation(v)
		if err != nil || ct.Filter != "admin" {
			badRequest(w, "continuationToken", fmt.Errorf("%q is not a token this service issued", truncate(v, 40)))
			return
		}
		offset = ct.Offset
	}
	if strings.EqualFold(qget(q, "isPublic"), "true") {
		writeJSON(w, http.StatusOK, pagedSessionTokens{Value: []sessionToken{}}) // SSH keys: none here
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var owner *User
	for _, u := range r.org.users {
		if strings.EqualFold(u.Descriptor, descriptor) {
			owner = u
		}
	}
	if owner == nil {
		writeVSS(w, http.StatusNotFound, "IdentityNotFoundException",
			fmt.Sprintf("The subject descriptor %q is not a member of organization %s.", truncate(descriptor, 80), r.org.Name))
		return
	}
	now := s.clock.Now()
	var ps []*pat
	for _, p := range s.pats {
		if strings.EqualFold(p.owner, owner.ObjectID) && (p.allOrgs || p.orgID == r.org.ID) {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].id < ps[j].id })
	start := min(offset, len(ps))
	end := min(start+size, len(ps))
	out := pagedSessionTokens{Value: []sessionToken{}}
	for _, p := range ps[start:end] {
		out.Value = append(out.Value, sessionToken{AccessID: p.id, AuthorizationID: p.id, ClientID: "00000000-0000-0000-0000-000000000000",
			DisplayName: p.displayName, HostAuthorizationID: "00000000-0000-0000-0000-000000000000",
			IsValid: p.status(now) == StatusActive, Scope: p.scope, TargetAccounts: p.targets(), UserID: owner.ID,
			ValidFrom: formatTime(p.validFrom), ValidTo: formatTime(p.validTo)})
	}
	if end < len(ps) {
		ct := encodeContinuation(continuation{Offset: end, Filter: "admin"})
		out.ContinuationToken = &ct
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Emulator) adminRevoke(w http.ResponseWriter, r *request) {
	if strings.EqualFold(qget(r.URL.Query(), "isPublic"), "true") {
		w.WriteHeader(http.StatusNoContent) // SSH keys: none here
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	ids, err := decodeRevocations(body)
	if err != nil {
		badRequest(w, "token revocations", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for _, id := range ids {
		p, ok := s.pats[id]
		// Only PATs usable in this organization are the administrator's to revoke;
		// unknown ids are ignored, as the service does.
		if !ok || (!p.allOrgs && p.orgID != r.org.ID) || !p.revokedAt.IsZero() {
			continue
		}
		p.revokedAt = now
		s.log.Info("devops emulator: PAT revoked by administrator", "org", r.org.Name, "admin", r.user.UPN, "authorizationId", p.id)
	}
	w.WriteHeader(http.StatusNoContent)
}

// identityRef is the subset of Identity connectionData returns.
type identityRef struct {
	ID                  string         `json:"id"`
	Descriptor          string         `json:"descriptor"`
	SubjectDescriptor   string         `json:"subjectDescriptor"`
	ProviderDisplayName string         `json:"providerDisplayName"`
	CustomDisplayName   *string        `json:"customDisplayName"`
	IsActive            bool           `json:"isActive"`
	Properties          map[string]any `json:"properties"`
	ResourceVersion     int            `json:"resourceVersion"`
	MetaTypeID          int            `json:"metaTypeId"`
}

func (s *Emulator) connectionData(w http.ResponseWriter, r *request) {
	u := r.user
	// id is Azure DevOps' identity id, not the Entra object id; the object id appears only
	// as a property, as in the Identities API (docs/emulator-fidelity.md 5.1–5.3).
	id := identityRef{ID: u.ID, Descriptor: u.identityDescriptor(),
		SubjectDescriptor: u.Descriptor, ProviderDisplayName: u.DisplayName, IsActive: true, ResourceVersion: 2,
		Properties: map[string]any{
			"Account": map[string]string{"$type": "System.String", "$value": u.UPN},
			"http://schemas.microsoft.com/identity/claims/objectidentifier": map[string]string{"$type": "System.String", "$value": u.ObjectID},
		}}
	writeJSON(w, http.StatusOK, map[string]any{
		"authenticatedUser":   id,
		"authorizedUser":      id,
		"instanceId":          r.orgInfo.ID,
		"deploymentId":        s.deployment,
		"deploymentType":      "hosted",
		"locationServiceData": map[string]any{"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7", "defaultAccessMappingMoniker": "PublicAccessMapping", "lastChangeId": 1, "lastChangeId64": 1},
	})
}

func newGUID() string { return uuid.NewString() }
