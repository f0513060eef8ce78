package rotation

import "time"

// RenewWindow is how long before expiry a PAT is replaced: renewBefore, capped at a
// third of the PAT's lifetime so that a PAT shorter than Key Vault's 30-day
// SecretNearExpiry lead is not replaced the moment it is written (the event fires at
// once, finds it outside the window, and schedules a wake-up instead of looping).
func RenewWindow(lifetime, renewBefore time.Duration) time.Duration {
	if lifetime > 0 && lifetime/3 < renewBefore {
		return lifetime / 3
	}
	return renewBefore
}

// RenewAt is when a PAT expiring at exp with the given lifetime should be replaced,
// truncated to the second so repeated evaluations agree.
func RenewAt(exp time.Time, lifetime, renewBefore time.Duration) time.Time {
	return exp.Add(-RenewWindow(lifetime, renewBefore)).Truncate(time.Second)
}

// lifetimeOf is the issued PAT's actual lifetime (organizations may shorten what was
// asked), falling back to the policy's.
func lifetimeOf(v Version, policy time.Duration) time.Duration {
	issued := v.NotBefore
	if issued.IsZero() {
		issued = v.Created
	}
	if !issued.IsZero() && !v.Expires.IsZero() && v.Expires.After(issued) {
		return v.Expires.Sub(issued)
	}
	return policy
}

// The checks that decide on the PAT's dates. They come last in Decide: they rotate what
// is due and otherwise name when to look again.

func checkExpired(f Facts) (Decision, bool) {
	exp := f.Input.Current.Expires
	if exp.IsZero() || f.Now.Before(exp) {
		return pass()
	}
	return rotate(ReasonExpired, "the PAT expired at "+exp.UTC().Format(time.RFC3339))
}

func checkNoExpiry(f Facts) (Decision, bool) {
	if !f.Input.Current.Expires.IsZero() {
		return pass()
	}
	return rotate(ReasonNoExpiry, "the current version has no expiry date")
}

// checkRenewWindow always decides: rotate, or wait for the window to open.
func checkRenewWindow(f Facts) (Decision, bool) {
	v := f.Input.Current
	at := RenewAt(v.Expires, lifetimeOf(v, f.Policy.Lifetime), f.Input.Defaults.RenewBefore)
	if !f.Now.Before(at) {
		return rotate(ReasonRenewWindow, "inside the renew window that began "+at.UTC().Format(time.RFC3339))
	}
	return Decision{Action: ActionWait, Reason: ReasonNotDue, At: at,
		Message: "the renew window starts " + at.UTC().Format(time.RFC3339)}, true
}
