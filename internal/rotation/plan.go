package rotation

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// PlanRow is one input of the sweep and one line of `patrol status` / `patrol plan`
// (whose wire form is contract.SecretStatus; see Status).
type PlanRow struct {
	Secret         string
	Org            string
	Owner          string
	ServiceAccount string
	PATID          string
	// PreviousPATID is the PAT the current one replaced (patrol-previous-pat-id): still
	// active until its scheduled revocation runs.
	PreviousPATID string
	// Scopes are the policy's scopes as the patrol-scopes tag lists them; only the
	// one-secret detail (StatusDetail) reports them.
	Scopes  string
	Version string
	Expires time.Time
	// DaysLeft is whole days until Expires, negative once expired (0 without Expires).
	DaysLeft int
	// Action/Reason are what a sweep would do now; At is when (now for rotate, the
	// renew window's start for wait).
	Action  Action
	Reason  Reason
	At      time.Time
	Message string
	// LastOperation and LastReason are the patrol-op and patrol-reason tags: the
	// operation that wrote the current version and why.
	LastOperation string
	LastReason    string
	// RequestedBy and RequestReason are who asked for the rotation that wrote the
	// current version and why (the patrol-requested-by and patrol-request-reason tags;
	// RotateNow and `patrol rotate` set them).
	RequestedBy   string
	RequestReason string
}

// Status is the row as patrol reports it (CLI and SecretStatus alike).
func (r PlanRow) Status() contract.SecretStatus {
	s := contract.SecretStatus{
		Secret: r.Secret, Managed: true, Org: r.Org, Owner: r.Owner, ServiceAccount: r.ServiceAccount,
		PATID: r.PATID, Version: r.Version, Expires: r.Expires, Action: string(r.Action), Reason: string(r.Reason),
		RenewAt: r.At, Message: r.Message, LastOperation: r.LastOperation, LastReason: r.LastReason,
		PreviousPATID: r.PreviousPATID, RequestedBy: r.RequestedBy, RequestReason: r.RequestReason,
	}
	if !r.Expires.IsZero() {
		left := r.DaysLeft
		s.DaysLeft = &left
	}
	if r.Action == ActionAttention {
		s.NeedsAttention = r.Message
	}
	return s
}

// StatusDetail is Status with what only a one-secret view reports (the scopes).
func (r PlanRow) StatusDetail() contract.SecretStatus {
	s := r.Status()
	s.Scopes = r.Scopes
	return s
}

// StatusOf describes one secret: its plan row's Status when patrol manages it (row
// must then be the row Plan gave for v), its name alone otherwise.
func StatusOf(v Version, row *PlanRow) contract.SecretStatus {
	if row == nil || !IsManaged(v.Tags) {
		return contract.SecretStatus{Secret: v.Name, Managed: IsManaged(v.Tags)}
	}
	return row.Status()
}

// Plan evaluates every managed secret (SecretStore.ListManaged) as the sweep would,
// changing nothing. Rows are sorted by when something happens, soonest first, then
// by name. Secrets due now include any whose wake-up was missed.
func Plan(versions []Version, d Defaults, now time.Time) []PlanRow {
	rows := make([]PlanRow, 0, len(versions))
	for _, v := range versions {
		dec := Decide(Input{Exists: true, Current: v, Defaults: d}, Trigger{Kind: TriggerSweep}, now)
		row := PlanRow{
			Secret: v.Name, Org: dec.Policy.Org, Owner: dec.State.Owner, ServiceAccount: dec.Policy.ServiceAccount,
			PATID: v.Tags[TagPATID], Version: v.ID, Expires: v.Expires, Action: dec.Action, Reason: dec.Reason, At: dec.At,
			Message: dec.Message, LastOperation: v.Tags[TagOp], LastReason: v.Tags[TagReason],
			PreviousPATID: v.Tags[TagPreviousPATID], Scopes: v.Tags[TagScopes],
			RequestedBy: v.Tags[TagRequestedBy], RequestReason: v.Tags[TagRequestReason],
		}
		// Policy or state that does not parse still shows what the tags say.
		if row.Org == "" {
			row.Org = v.Tags[TagOrg]
		}
		if row.Owner == "" {
			row.Owner = v.Tags[TagOwner]
		}
		if row.ServiceAccount == "" {
			row.ServiceAccount = v.Tags[TagServiceAccount]
		}
		if dec.Action == ActionRotate {
			row.At = now
		}
		if !v.Expires.IsZero() {
			row.DaysLeft = int(math.Floor(v.Expires.Sub(now).Hours() / 24))
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b PlanRow) int {
		return cmp.Or(compareTimes(a.At, b.At), cmp.Compare(a.Secret, b.Secret))
	})
	return rows
}

// compareTimes orders zero times (no scheduled action) last.
func compareTimes(a, b time.Time) int {
	switch {
	case a.IsZero() && b.IsZero():
		return 0
	case a.IsZero():
		return 1
	case b.IsZero():
		return -1
	}
	return a.Compare(b)
}

// Due returns the rows a sweep should enqueue a rotation for.
func Due(rows []PlanRow) []PlanRow {
	var due []PlanRow
	for _, r := range rows {
		if r.Action == ActionRotate {
			due = append(due, r)
		}
	}
	return due
}

// SweepOpID is the operation id a sweep uses for a due secret: derived from the
// version, so overlapping sweeps enqueue one command.
func SweepOpID(row PlanRow) string { return DeriveOpID(string(TriggerSweep), row.Secret, row.Version) }

// OrphanMinAge is how old an unreferenced patrol PAT must be before Orphans reports
// it: far longer than any rotation takes, so a PAT created by a rotation still in
// flight (between create and store) is never mistaken for an orphan.
const OrphanMinAge = time.Hour

// Orphans returns the PATs patrol created (display name "patrol <secret> <op>") that
// no managed secret needs: not the current PAT of any version, and not a previous PAT
// still inside its grace period (its scheduled revocation handles that). pats are an
// account's active PATs in one organization; versions are SecretStore.ListManaged.
// The sweep schedules a Revocation for each; Rotator.Revoke re-checks the current PAT
// before revoking.
func Orphans(pats []PATInfo, versions []Version, d Defaults, now time.Time) []PATInfo {
	needed := map[string]bool{}
	for _, v := range versions {
		st, err := ParseState(v.Tags)
		if err != nil {
			// Unreadable state: keep every PAT named for this secret.
			needed["secret:"+v.Name] = true
			continue
		}
		needed[st.PATID] = true
		if st.PreviousPATID != "" {
			grace := d.Grace
			if p, err := ParsePolicy(v.Tags, d); err == nil {
				grace = p.Grace
			}
			if v.Created.IsZero() || now.Before(v.Created.Add(grace+OrphanMinAge)) {
				needed[st.PreviousPATID] = true
			}
		}
	}
	var out []PATInfo
	for _, p := range pats {
		secret, _, ok := ParseDisplayName(p.DisplayName)
		if !ok || needed[p.ID] || needed["secret:"+secret] {
			continue
		}
		if p.ValidFrom.IsZero() || now.Sub(p.ValidFrom) < OrphanMinAge {
			continue
		}
		out = append(out, p)
	}
	return out
}
