package functionapp

// This file is what an offboarding does beyond re-issuing secrets: the account of the
// person, published as an offboarding-report outcome, and what happens to the PATs of
// theirs that no secret holds (PATROL_OFFBOARDING_UNMANAGED). docs/offboarding.md
// explains it; docs/security.md says why a revocation of an unmanaged PAT is signed and
// checked against a fresh listing.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// UnmanagedPolicy is what Offboard does with a leaver's PATs that no managed secret
// holds (PATROL_OFFBOARDING_UNMANAGED; the values are config's).
type UnmanagedPolicy string

// Unmanaged policies.
const (
	UnmanagedReport           UnmanagedPolicy = "report"
	UnmanagedRevokeAfterGrace UnmanagedPolicy = "revoke-after-grace"
	UnmanagedRevokeNow        UnmanagedPolicy = "revoke-now"
)

// ReasonUnmanaged is the outcome reason of a revoked (or skipped) unmanaged PAT.
const ReasonUnmanaged = "offboarding-unmanaged"

// ReportOpID is the operation id of an HR event's offboarding-report outcome.
func ReportOpID(eventID string) string {
	return rotation.DeriveOpID(string(contract.StatusOffboardingReport), eventID)
}

// UnmanagedOpID is the operation id (and MessageId) of the revocation of one unmanaged
// PAT for one HR event: a redelivered HR message sends the same one, which the queue
// drops.
func UnmanagedOpID(eventID, patID string) string {
	return rotation.DeriveOpID(string(contract.RevokeUnmanaged), eventID, strings.ToLower(patID))
}

// ApplyUnmanaged says in acc what happens to each unmanaged PAT under policy, and, for
// an account built for an HR event (EventID set) under a revoking policy, returns the
// revocation commands to send (unsigned), each due at its RequestedAt: now, or grace
// later. A live account (no event) only describes what an offboarding would do.
func ApplyUnmanaged(acc contract.PersonAccount, policy UnmanagedPolicy, grace time.Duration, now time.Time) (contract.PersonAccount, []contract.RevocationCommand) {
	var cmds []contract.RevocationCommand
	owner := acc.Person.UPN
	if owner == "" {
		owner = acc.Person.ObjectID
	}
	orgs := slices.Clone(acc.Organizations)
	for i, o := range orgs {
		pats := slices.Clone(o.PATs)
		for j, p := range pats {
			if p.Class != contract.PATUnmanaged || policy == UnmanagedReport || policy == "" {
				continue
			}
			at := now
			if policy == UnmanagedRevokeAfterGrace {
				at = now.Add(grace)
			}
			p.RevokeAt = at.UTC()
			switch {
			case acc.EventID == "" && policy == UnmanagedRevokeNow:
				p.Action = "an offboarding revokes it at once (" + string(policy) + ")"
			case acc.EventID == "":
				p.Action = fmt.Sprintf("an offboarding revokes it %s later (%s)", grace, policy)
			default:
				p.Action = "revocation queued for " + p.RevokeAt.Format(time.RFC3339) + " (" + string(policy) + ")"
				person := acc.Person
				cmds = append(cmds, contract.RevocationCommand{SchemaVersion: contract.SchemaVersion, Kind: contract.RevokeUnmanaged,
					Org: o.Org, PATID: p.PATID, Owner: owner, Account: o.ListedBy, OperationID: UnmanagedOpID(acc.EventID, p.PATID),
					EventID: acc.EventID, Person: &person, RequestedAt: p.RevokeAt})
			}
			if acc.EventID == "" {
				p.RevokeAt = time.Time{} // nothing is scheduled yet
			}
			pats[j] = p
		}
		orgs[i].PATs = pats
	}
	acc.Organizations = orgs
	return acc, cmds
}

// Summary counts an account's PATs by class, and the organizations not listed.
func Summary(acc contract.PersonAccount) string {
	n := map[contract.PATClass]int{}
	unlisted := 0
	for _, o := range acc.Organizations {
		if o.Problem != "" {
			unlisted++
		}
		for _, p := range o.PATs {
			n[p.Class]++
		}
	}
	s := fmt.Sprintf("%d managed, %d held by secrets whose service account is the person, %d unmanaged, in %d organization(s)",
		n[contract.PATManaged], n[contract.PATServiceAccount], n[contract.PATUnmanaged], len(acc.Organizations))
	if unlisted > 0 {
		s += fmt.Sprintf("; %d could not be listed (see each organization's problem)", unlisted)
	}
	return s
}

// report builds the account of the person once the re-issues are queued — from the
// versions the offboarding already listed, so the vault is read once — sends the
// revocations of unmanaged PATs the policy asks for, and publishes and logs the account.
func (a *App) report(ctx context.Context, msg contract.OffboardingMessage, versions []rotation.Version) error {
	log := a.log.With("eventId", msg.EventID)
	now := a.now()
	listings := GatherAccount(ctx, a.o.People, msg.Person, a.o.Defaults)
	acc := ClassifyAccount(msg.Person, msg.EventID, listings, versions, a.o.Defaults, now)
	acc, cmds := ApplyUnmanaged(acc, a.o.Unmanaged, a.o.Defaults.Grace, now)
	if len(cmds) > 0 && a.o.CommandKeys == nil {
		// A misconfigured instance still reports; it says it revoked nothing.
		log.WarnContext(ctx, "offboarding: unmanaged PATs not revoked: this instance has no command key", "setting", string(a.o.Unmanaged))
		acc = notRevoked(acc)
		cmds = nil
	}
	if len(cmds) > 0 {
		if err := a.sendUnmanaged(ctx, cmds); err != nil {
			return fmt.Errorf("functionapp: offboarding %s: revocations of unmanaged PATs: %w", msg.EventID, err)
		}
	}
	// The outcome lists the PATs that need a person first and counts the rest, so it
	// always fits one Service Bus message; the log below lists every one.
	published := acc.Trimmed(contract.MaxReportedPATs)
	o := rotation.Outcome{Status: contract.StatusOffboardingReport, Op: ReportOpID(msg.EventID), Trigger: rotation.TriggerOffboarding,
		Owner: firstNonEmpty(msg.Person.UPN, msg.Person.ObjectID), Message: Summary(acc), Time: now, Account: &published}
	if err := a.o.Publisher.Publish(ctx, o); err != nil {
		return fmt.Errorf("functionapp: offboarding %s: publish the report: %w", msg.EventID, err)
	}
	for _, org := range acc.Organizations {
		if org.Problem != "" {
			log.WarnContext(ctx, "offboarding report: organization not listed", "org", org.Org, "problem", org.Problem)
		}
		for _, p := range org.PATs {
			log.InfoContext(ctx, "offboarding report: PAT", "org", org.Org, "patId", p.PATID, "displayName", p.DisplayName,
				"class", string(p.Class), "secret", p.Secret, "expires", p.Expires, "action", p.Action)
		}
	}
	log.InfoContext(ctx, "offboarding report published", "summary", o.Message, "revocations", len(cmds))
	return nil
}

// notRevoked says in acc that no unmanaged PAT's revocation was sent.
func notRevoked(acc contract.PersonAccount) contract.PersonAccount {
	orgs := slices.Clone(acc.Organizations)
	for i, o := range orgs {
		pats := slices.Clone(o.PATs)
		for j, p := range pats {
			if p.Class == contract.PATUnmanaged {
				p.RevokeAt, p.Action = time.Time{}, "not revoked: this instance has no command key to revoke it with"
				pats[j] = p
			}
		}
		orgs[i].PATs = pats
	}
	acc.Organizations = orgs
	return acc
}

func (a *App) sendUnmanaged(ctx context.Context, cmds []contract.RevocationCommand) error {
	key, err := a.o.CommandKeys.SigningKey(ctx)
	if err != nil {
		return fmt.Errorf("read the command key: %w", err)
	}
	return a.fanOut(ctx, len(cmds), func(i int) error {
		cmd := cmds[i]
		if err := cmd.Validate(); err != nil {
			return err
		}
		if err := cmd.Sign(key); err != nil {
			return err
		}
		return a.o.Commands.SendRevocation(ctx, cmd, cmd.OperationID, cmd.RequestedAt)
	})
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// UnmanagedOnRecord decides whether patrol may revoke the unmanaged PAT a signed
// RevokeUnmanaged command names, from a fresh listing of the person's active PATs in
// the command's organization (nil: the person is no longer a user there). The empty
// string means yes, "gone" that there is nothing left to revoke; anything else is why
// it is refused.
func UnmanagedOnRecord(cmd contract.RevocationCommand, policy UnmanagedPolicy, listed []contract.AccountPAT, versions []rotation.Version, d rotation.Defaults) string {
	person := rotation.Person{UPN: cmd.Person.UPN, ObjectID: cmd.Person.ObjectID}
	switch {
	case policy != UnmanagedRevokeNow && policy != UnmanagedRevokeAfterGrace:
		return fmt.Sprintf("PATROL_OFFBOARDING_UNMANAGED is %q on this instance: unmanaged PATs are reported, not revoked", policy)
	case !slices.Contains(d.Bounds.Orgs, strings.ToLower(cmd.Org)):
		return fmt.Sprintf("organization %s is not in PATROL_ALLOWED_ORGS", cmd.Org)
	case person.Is(d.ServiceAccount) || slices.ContainsFunc(slices.Collect(maps.Keys(d.Bounds.ServiceAccounts)), person.Is):
		return "the person is one of patrol's service accounts; their PATs are never revoked as a leaver's"
	case !strings.EqualFold(cmd.Account, ListingAccount(cmd.Org, d)):
		return fmt.Sprintf("account %s is not the one that lists and revokes in %s (%s)", cmd.Account, cmd.Org, ListingAccount(cmd.Org, d))
	}
	i := slices.IndexFunc(listed, func(p contract.AccountPAT) bool { return strings.EqualFold(p.PATID, cmd.PATID) })
	if i < 0 {
		return "gone"
	}
	acc := ClassifyAccount(*cmd.Person, cmd.EventID, []OrgListing{{Org: cmd.Org, Account: cmd.Account, PATs: listed[i : i+1]}}, versions, d, time.Time{})
	if c := acc.Organizations[0].PATs[0].Class; c != contract.PATUnmanaged {
		return fmt.Sprintf("PAT %s is %s now (a managed secret holds it): patrol re-issues such PATs, it does not revoke them as unmanaged", cmd.PATID, c)
	}
	return ""
}

// revokeUnmanaged performs a RevokeUnmanaged command: it verifies the signature, lists
// the person's PATs afresh, applies UnmanagedOnRecord, revokes through token
// administration, and publishes the outcome. Refusals are published and dead-lettered;
// failures to read or list are transient.
func (a *App) revokeUnmanaged(ctx context.Context, cmd contract.RevocationCommand) error {
	o := rotation.Outcome{Op: cmd.OperationID, Trigger: rotation.TriggerRevoke, Reason: ReasonUnmanaged, Org: cmd.Org,
		Owner: cmd.Owner, PreviousPATID: cmd.PATID, Time: a.now()}
	why := ""
	if err := a.verifyRevocation(ctx, cmd); err != nil {
		if !errors.Is(err, contract.ErrUnauthenticated) {
			return err
		}
		why = err.Error()
	}
	if why == "" {
		versions, err := a.o.Inventory.ListManaged(ctx)
		if err != nil {
			return fmt.Errorf("functionapp: list managed secrets: %w", err)
		}
		var listed []contract.AccountPAT
		if a.o.People == nil {
			why = "this instance has no Azure DevOps client to list with"
		} else if listed, err = a.o.People.PersonPATs(ctx, cmd.Account, cmd.Org, *cmd.Person); err != nil && !errors.Is(err, rotation.ErrNotFound) {
			return fmt.Errorf("functionapp: list the PATs of %s in %s: %w", cmd.Owner, cmd.Org, err)
		}
		if why == "" {
			why = UnmanagedOnRecord(cmd, a.o.Unmanaged, listed, versions, a.o.Defaults)
		}
	}
	switch why {
	case "":
		if err := a.o.People.RevokePersonPAT(ctx, cmd.Account, cmd.Org, cmd.PATID); err != nil && !errors.Is(err, rotation.ErrNotFound) {
			if rotation.IsPermanent(err) {
				o.Status, o.Message = rotation.StatusFailed, err.Error()
				if perr := a.o.Publisher.Publish(ctx, o); perr != nil {
					return fmt.Errorf("functionapp: publish: %w", perr)
				}
				return fmt.Errorf("revoke unmanaged PAT %s: %w: %w", cmd.PATID, handlers.ErrPermanent, err)
			}
			return err
		}
		o.Status, o.Message = rotation.StatusRevoked, fmt.Sprintf("revoked %s's unmanaged PAT (HR event %s)", cmd.Owner, cmd.EventID)
	case "gone":
		o.Status, o.Message = rotation.StatusSkipped, "the PAT is no longer active: nothing to revoke"
	default:
		o.Status, o.Reason, o.Message = rotation.StatusFailed, ReasonNotOnRecord, "revocation refused: "+why
		if err := a.o.Publisher.Publish(ctx, o); err != nil {
			return fmt.Errorf("functionapp: publish the refused revocation: %w", err)
		}
		a.log.WarnContext(ctx, "revocation of an unmanaged PAT refused", "patId", cmd.PATID, "org", cmd.Org, "operationId", cmd.OperationID, "reason", why)
		return fmt.Errorf("revocation refused: %s: %w", why, handlers.ErrPermanent)
	}
	if err := a.o.Publisher.Publish(ctx, o); err != nil {
		return fmt.Errorf("functionapp: publish: %w", err)
	}
	a.log.InfoContext(ctx, "unmanaged PAT of a leaver", "status", string(o.Status), "patId", cmd.PATID, "org", cmd.Org, "eventId", cmd.EventID)
	return nil
}

// verifyRevocation checks a RevokeUnmanaged command's signature.
func (a *App) verifyRevocation(ctx context.Context, cmd contract.RevocationCommand) error {
	if cmd.Signature == nil {
		return cmd.Verify(contract.CommandKey{}, a.now())
	}
	if a.o.CommandKeys == nil {
		return &contract.AuthError{Problem: "this app has no command key configured, so it cannot verify signed commands"}
	}
	key, err := a.o.CommandKeys.VerifyingKey(ctx, cmd.Signature.KeyVersion)
	if err != nil {
		if errors.Is(err, contract.ErrUnauthenticated) {
			return &contract.AuthError{Problem: "key version " + contract.Clip(cmd.Signature.KeyVersion) + " is not a usable command key"}
		}
		return fmt.Errorf("functionapp: read the command key: %w", err)
	}
	return cmd.Verify(key, a.now())
}
