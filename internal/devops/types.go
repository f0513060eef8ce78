package devops

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/patrol-dev/patrol/internal/secret"
)

// PAT is a personal access token as the lifecycle API describes it.
type PAT struct {
	AuthorizationID string // the stable id: store it, revoke by it
	DisplayName     string
	Scope           string   // space-separated scopes
	TargetAccounts  []string // organization ids; nil for an all-organizations PAT
	ValidFrom       time.Time
	ValidTo         time.Time    // as the service set it (policies may clamp)
	Token           secret.Value // only from CreatePAT; zero otherwise
}

// LogValue logs a PAT by id, never by value.
func (p PAT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("authorizationId", p.AuthorizationID), slog.String("displayName", p.DisplayName),
		slog.Time("validTo", p.ValidTo))
}

// User is the identity a PAT authenticates as (connectionData's authenticatedUser).
type User struct {
	ID                string // Azure DevOps identity id (not the Entra object id)
	Descriptor        string
	SubjectDescriptor string // what the token-admin API takes
	DisplayName       string
}

// SessionToken is a PAT as the token-admin API lists it.
type SessionToken struct {
	AuthorizationID string
	DisplayName     string
	Scope           string
	TargetAccounts  []string
	UserID          string
	ValidFrom       time.Time
	ValidTo         time.Time
	IsValid         bool // neither revoked nor expired
}

// GraphUser is a user as the Graph users API describes it.
type GraphUser struct {
	PrincipalName string // the UPN
	OriginID      string // the Entra object id
	DisplayName   string
	Descriptor    string // the subject descriptor token admin takes: "aad." + …
}

// Wire shapes.

type wireGraphUser struct {
	PrincipalName string `json:"principalName"`
	OriginID      string `json:"originId"`
	DisplayName   string `json:"displayName"`
	Descriptor    string `json:"descriptor"`
}

type graphUsers struct {
	Value []wireGraphUser `json:"value"`
}

type wirePAT struct {
	DisplayName     string   `json:"displayName"`
	ValidTo         string   `json:"validTo"`
	Scope           string   `json:"scope"`
	TargetAccounts  []string `json:"targetAccounts"`
	ValidFrom       string   `json:"validFrom"`
	AuthorizationID string   `json:"authorizationId"`
	Token           *string  `json:"token"`
}

type patTokenResult struct {
	PatToken      *wirePAT `json:"patToken"`
	PatTokenError string   `json:"patTokenError"`
}

type pagedPatTokens struct {
	ContinuationToken string    `json:"continuationToken"`
	PatTokens         []wirePAT `json:"patTokens"`
}

type wireSessionToken struct {
	AuthorizationID string   `json:"authorizationId"`
	DisplayName     string   `json:"displayName"`
	Scope           string   `json:"scope"`
	TargetAccounts  []string `json:"targetAccounts"`
	UserID          string   `json:"userId"`
	ValidFrom       string   `json:"validFrom"`
	ValidTo         string   `json:"validTo"`
	IsValid         bool     `json:"isValid"`
}

type pagedSessionTokens struct {
	Value             []wireSessionToken `json:"value"`
	ContinuationToken *string            `json:"continuationToken"`
}

type connectionData struct {
	AuthenticatedUser struct {
		ID                  string `json:"id"`
		Descriptor          string `json:"descriptor"`
		SubjectDescriptor   string `json:"subjectDescriptor"`
		ProviderDisplayName string `json:"providerDisplayName"`
	} `json:"authenticatedUser"`
}

// pat converts a PatTokenResult: any patTokenError other than "none" is a failure, and
// a create must carry the token.
func (r patTokenResult) pat(op, org string, wantToken bool) (PAT, error) {
	if r.PatTokenError != "" && r.PatTokenError != "none" {
		return PAT{}, patTokenError(op, org, r.PatTokenError)
	}
	if r.PatToken == nil {
		return PAT{}, decodeError(op, org, fmt.Errorf("patTokenError is %q but patToken is null", r.PatTokenError))
	}
	p, err := r.PatToken.pat()
	if err != nil {
		return PAT{}, decodeError(op, org, err)
	}
	if wantToken && p.Token.IsZero() {
		return PAT{}, decodeError(op, org, fmt.Errorf("PAT %s came back without its token", p.AuthorizationID))
	}
	return p, nil
}

func (w wirePAT) pat() (PAT, error) {
	p := PAT{AuthorizationID: w.AuthorizationID, DisplayName: w.DisplayName, Scope: w.Scope, TargetAccounts: w.TargetAccounts}
	if w.AuthorizationID == "" {
		return PAT{}, fmt.Errorf("PAT %q has no authorizationId", w.DisplayName)
	}
	var err error
	if p.ValidFrom, err = parseTime(w.ValidFrom); err != nil {
		return PAT{}, fmt.Errorf("PAT %s validFrom: %w", w.AuthorizationID, err)
	}
	if p.ValidTo, err = parseTime(w.ValidTo); err != nil {
		return PAT{}, fmt.Errorf("PAT %s validTo: %w", w.AuthorizationID, err)
	}
	if w.Token != nil {
		p.Token = secret.New(*w.Token)
	}
	return p, nil
}

func (w wireSessionToken) sessionToken() (SessionToken, error) {
	st := SessionToken{AuthorizationID: w.AuthorizationID, DisplayName: w.DisplayName, Scope: w.Scope,
		TargetAccounts: w.TargetAccounts, UserID: w.UserID, IsValid: w.IsValid}
	var err error
	if st.ValidFrom, err = parseTime(w.ValidFrom); err != nil {
		return SessionToken{}, fmt.Errorf("session token %s validFrom: %w", w.AuthorizationID, err)
	}
	if st.ValidTo, err = parseTime(w.ValidTo); err != nil {
		return SessionToken{}, fmt.Errorf("session token %s validTo: %w", w.AuthorizationID, err)
	}
	return st, nil
}

// parseTime reads .NET round-trip timestamps: up to 7 fractional digits, and a missing
// zone designator meaning UTC.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 timestamp", s)
}
