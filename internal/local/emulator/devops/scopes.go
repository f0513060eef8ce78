package devops

import (
	"fmt"
	"slices"
	"strings"
)

// Delegated Entra scopes the emulator requires per operation (docs/emulator-fidelity.md
// 1.1, 1.8, D1). Since Sprint 257 the PAT lifecycle API takes vso.pats to read and
// vso.pats_manage to create, update and revoke, "replacing the previously broad
// user_impersonation scope"; token administration declares vso.tokenadministration
// (tokenAdmin.json); connectionData takes any Azure DevOps token.
const (
	ScopePATs            = "vso.pats"
	ScopePATsManage      = "vso.pats_manage"
	ScopeTokenAdminister = "vso.tokenadministration"
	// ScopeGraph reads users and groups (graph.json: every GET of graph/users).
	ScopeGraph = "vso.graph"
)

// requiredScope is the scope a bearer token must carry for op ("" = any).
func requiredScope(op string) string {
	switch op {
	case OpListPats, OpGetPat:
		return ScopePATs
	case OpCreatePat, OpUpdatePat, OpRevokePat:
		return ScopePATsManage
	case OpAdminList, OpAdminRevoke:
		return ScopeTokenAdminister
	case OpGraphUsers, OpGraphUser:
		return ScopeGraph
	}
	return ""
}

// checkScope refuses a token that lacks op's scope, as Azure DevOps refuses a
// user_impersonation-only token on the PAT API: 401 TF400813. The live wording is
// unverified; the status is what the Sprint 257 note and 3P measurements report.
func checkScope(op, principal string, scopes []string) *authFailure {
	need := requiredScope(op)
	if need == "" || slices.ContainsFunc(scopes, func(s string) bool { return strings.EqualFold(s, need) }) {
		return nil
	}
	have := strings.Join(scopes, " ")
	if have == "" {
		have = "none"
	}
	return &authFailure{status: 401, typeKey: "UnauthorizedRequestException",
		message: fmt.Sprintf("TF400813: The user '%s' is not authorized to access this resource. The access token's scopes (%s) do not include %s, which this API requires; user_impersonation no longer grants it.", principal, have, need)}
}
