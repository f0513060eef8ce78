package functionapp

// This file decides which commands patrol sends for what it is told: pure functions of
// their inputs, table-tested without I/O.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Reasons an event is not turned into a command. Each is logged; none is an error,
// because Event Grid redelivering the event could not change the answer.
const (
	SkipOtherVault    = "other-vault"
	SkipUnhandledType = "unhandled-event-type"
	SkipMissing       = string(rotation.ReasonSecretMissing)
	SkipNotManaged    = string(rotation.ReasonNotManaged)
	SkipDisabled      = string(rotation.ReasonDisabled)
	SkipStaleVersion  = string(rotation.ReasonStaleVersion)
	SkipAlreadyDone   = string(rotation.ReasonAlreadyDone)
)

// Who patrol names as the requester of the commands it sends itself.
const (
	requestedByEvent = "keyvault-event"
	requestedBySweep = "sweep"
	requestedByHR    = "hr-offboarding"
)

// EventOpID is the operation id of the command a Key Vault event becomes: derived from
// (trigger, secret, version), so the same event delivered twice — or a near-expiry
// event raised again for the same version — is one operation.
func EventOpID(kind rotation.TriggerKind, secret, version string) string {
	return rotation.DeriveOpID(string(kind), secret, version)
}

// EventCommand decides what a Key Vault event asks for: a rotation command for the
// version it names, or a reason to skip it. vault, when set, is the only vault whose
// events count. The secret itself is judged by the core's admission checks, so an
// event is skipped exactly when the Rotate worker would skip its command.
func EventCommand(ev handlers.KeyVaultEvent, in rotation.Input, vault string, now time.Time) (contract.RotationCommand, string) {
	var kind rotation.TriggerKind
	switch ev.Type {
	case handlers.EventSecretNearExpiry:
		kind = rotation.TriggerNearExpiry
	case handlers.EventSecretExpired:
		kind = rotation.TriggerExpired
	default:
		return contract.RotationCommand{}, SkipUnhandledType
	}
	if vault != "" && ev.VaultName != "" && !strings.EqualFold(vault, ev.VaultName) {
		return contract.RotationCommand{}, SkipOtherVault
	}
	version := strings.ToLower(ev.Version)
	op := EventOpID(kind, ev.Secret, version)
	if reason, refused := admissionRefuses(in, rotation.Trigger{Kind: kind, Op: op, Version: version}, now); refused {
		return contract.RotationCommand{}, string(reason)
	}
	return contract.RotationCommand{
		SchemaVersion: contract.SchemaVersion, Secret: ev.Secret, OperationID: op,
		Trigger: kind, Version: version,
		RequestedBy: requestedByEvent, RequestedAt: now,
	}, ""
}

// admissionRefuses runs the core's admission checks (rotation.Admission) for a command
// about to be sent: refused is true with the reason when the Rotate worker would skip
// it. Needs-attention (unreadable state tags) is not a refusal: the command goes out,
// and the worker publishes the problem as an outcome.
func admissionRefuses(in rotation.Input, trig rotation.Trigger, now time.Time) (rotation.Reason, bool) {
	d, ok := rotation.Admission().Evaluate(rotation.NewFacts(in, trig, now))
	if !ok || d.Action != rotation.ActionSkip {
		return "", false
	}
	return d.Reason, true
}

// OffboardingOpID is the operation id of the command an offboarding sends for one
// secret: one per (HR event, secret), so a redelivered HR message re-sends the same
// commands and the queue drops them as duplicates.
func OffboardingOpID(eventID, secret string) string {
	return rotation.DeriveOpID(string(rotation.TriggerOffboarding), secret, eventID)
}

// OffboardingPlan is what one HR message leads to.
type OffboardingPlan struct {
	// Commands re-issue each PAT the person owns, one per secret, sorted by secret.
	Commands []contract.RotationCommand
	// Attention are needs-attention outcomes for secrets whose service account is the
	// person: re-issuing under that account would leave them depending on a person.
	Attention []rotation.Outcome
}

// PlanOffboarding finds every secret the person leaving affects, among those the
// core's admission checks let through (managed, enabled, not already handled by this
// HR event).
func PlanOffboarding(msg contract.OffboardingMessage, versions []rotation.Version, d rotation.Defaults, now time.Time) OffboardingPlan {
	person := rotation.Person{UPN: msg.Person.UPN, ObjectID: msg.Person.ObjectID}
	var p OffboardingPlan
	sorted := slices.SortedFunc(slices.Values(versions), func(a, b rotation.Version) int { return cmp.Compare(a.Name, b.Name) })
	for _, v := range sorted {
		op := OffboardingOpID(msg.EventID, v.Name)
		trig := rotation.Trigger{Kind: rotation.TriggerOffboarding, Op: op, Person: person}
		if _, refused := admissionRefuses(rotation.Input{Exists: true, Current: v, Defaults: d}, trig, now); refused {
			continue
		}
		account := strings.TrimSpace(v.Tags[rotation.TagServiceAccount])
		if account == "" {
			account = d.ServiceAccount
		}
		owner := v.Tags[rotation.TagOwner]
		switch {
		case person.Is(account):
			p.Attention = append(p.Attention, rotation.Outcome{
				Status: rotation.StatusNeedsAttention, Secret: v.Name, Op: op, Trigger: rotation.TriggerOffboarding,
				Reason: rotation.ReasonServiceAccountOffboarded, Org: v.Tags[rotation.TagOrg], Owner: owner,
				PATID: v.Tags[rotation.TagPATID], Time: now,
				Message: fmt.Sprintf("the secret's service account %s is the person leaving: set %s to a non-personal account, then rotate", account, rotation.TagServiceAccount),
			})
		case person.Is(owner):
			pp := msg.Person
			p.Commands = append(p.Commands, contract.RotationCommand{
				SchemaVersion: contract.SchemaVersion, Secret: v.Name, OperationID: op,
				Trigger: contract.TriggerOffboarding, Person: &pp,
				RequestedBy: requestedByHR + " " + msg.EventID, RequestedAt: now,
			})
		}
	}
	return p
}

// SweepCommands are the rotation commands a sweep sends: one per due secret, with the
// core's SweepOpID so overlapping sweeps collapse into one command per version.
func SweepCommands(rows []rotation.PlanRow, now time.Time) []contract.RotationCommand {
	var cmds []contract.RotationCommand
	for _, r := range rotation.Due(rows) {
		cmds = append(cmds, contract.RotationCommand{
			SchemaVersion: contract.SchemaVersion, Secret: r.Secret, OperationID: rotation.SweepOpID(r),
			Trigger: contract.TriggerSweep, Version: r.Version, RequestedBy: requestedBySweep, RequestedAt: now,
		})
	}
	return cmds
}

// AccountOrg is one service account in one organization: where the sweep looks for
// orphaned PATs.
type AccountOrg struct{ Account, Org string }

// AccountOrgs lists the (service account, organization) pairs of the managed secrets,
// sorted; secrets with unreadable policy are left out (the sweep reports them).
func AccountOrgs(versions []rotation.Version, d rotation.Defaults) []AccountOrg {
	seen := map[AccountOrg]bool{}
	var out []AccountOrg
	for _, v := range versions {
		p, err := rotation.ParsePolicy(v.Tags, d)
		if err != nil || p.ServiceAccount == "" {
			continue
		}
		g := AccountOrg{Account: strings.ToLower(p.ServiceAccount), Org: p.Org}
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b AccountOrg) int { return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Org, b.Org)) })
	return out
}

// OrphanRevocations turns the orphans among one account's PATs (rotation.Orphans) into
// revocations, each under the operation id its display name carries. Only orphans named
// for a managed secret under this account and organization are included: Revoke
// refuses any other (OnRecord), so an orphan of a deleted or unmanaged secret is left
// for an operator rather than dead-lettered at every sweep.
func OrphanRevocations(pats []rotation.PATInfo, versions []rotation.Version, d rotation.Defaults, g AccountOrg, now time.Time) []rotation.Revocation {
	ours := map[string]bool{}
	for _, v := range versions {
		if p, err := rotation.ParsePolicy(v.Tags, d); err == nil && strings.EqualFold(p.Org, g.Org) && strings.EqualFold(p.ServiceAccount, g.Account) {
			ours[strings.ToLower(v.Name)] = true
		}
	}
	var out []rotation.Revocation
	for _, p := range rotation.Orphans(pats, versions, d, now) {
		secret, op, ok := rotation.ParseDisplayName(p.DisplayName)
		if !ok || !contract.ValidSecretName(secret) || !ours[strings.ToLower(secret)] {
			continue
		}
		out = append(out, rotation.Revocation{Secret: secret, Org: g.Org, PATID: p.ID, Owner: g.Account, Account: g.Account, Op: op})
	}
	return out
}

// ManualCommand is the command an emergency rotation (RotateNow) sends, unsigned.
// RequestedBy is the caller's identity as the handler established it.
func ManualCommand(req handlers.RotateNowRequest, now time.Time) contract.RotationCommand {
	by := req.RequestedBy
	if by == "" {
		by = "RotateNow"
	}
	return contract.RotationCommand{
		SchemaVersion: contract.SchemaVersion, Secret: req.Secret, OperationID: req.OperationID,
		Trigger: contract.TriggerManual, RevokeNow: req.RevokeNow, RequestedBy: by, Reason: req.Reason, RequestedAt: now,
	}
}

// CheckRotatable says whether an emergency rotation of the secret can be accepted, by
// the core's admission checks: handlers.ErrNotFound (404) for a secret that does not
// exist or is one of patrol's own (the same answer, so RotateNow is no oracle for
// internal secrets), handlers.ErrConflict (409) for one patrol does not manage or that
// is disabled.
func CheckRotatable(secret string, in rotation.Input) error {
	reason, _ := admissionRefuses(in, rotation.Trigger{Kind: rotation.TriggerManual}, time.Time{})
	switch reason {
	case rotation.ReasonSecretMissing, rotation.ReasonInternalSecret:
		return errNoSuchSecret(secret)
	case rotation.ReasonNotManaged:
		return fmt.Errorf("secret %q is not managed by patrol (tag %s=true missing); adopt it first with `patrol adopt`: %w",
			secret, rotation.TagManaged, handlers.ErrConflict)
	case rotation.ReasonDisabled:
		return fmt.Errorf("secret %q: its current version is disabled; enable it or adopt a new one: %w", secret, handlers.ErrConflict)
	}
	return nil
}
