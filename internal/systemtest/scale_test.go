package systemtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/local/demo"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	kvemu "github.com/patrol-dev/patrol/internal/local/emulator/keyvault"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// The scale benchmark's shape (issue 12, "Offboarding at scale").
const (
	scaleSecrets = 10000
	scaleOwned   = 1000
	// secondOrg is the second organization the departing person's PATs are spread over.
	secondOrg = "fabrikam"
	// scaleCreates per scaleWindow is the Azure DevOps emulator's budget for the service
	// account: only CreatePat is charged (every other call costs nothing), so the budget
	// reads as "creates per window" and limit-use compares like with like. The window is
	// real time (the emulated clock is wall time unless advanced, and the benchmark
	// never advances it), so Rotate's in-process Retry-After waits (≤ 30 s) are the
	// real ones. 20 per 2 s (10 creates/s) is a third of what the handlers manage
	// unlimited (~30/s, where Key Vault's 300 writes per 10 s bind instead), so the
	// limiter bounds the run (~2 min).
	scaleCreates = 20
	scaleWindow  = 2 * time.Second
)

// BenchmarkOffboardingAtScale: one HR offboarding message for a person holding the PATs
// of 1,000 of 10,000 managed secrets, in two organizations, through the real path (HR
// message on hr-offboarding → devhost → `patrol serve` → pat-rotations → Rotate →
// emulators), with the Azure DevOps emulator's rate limit bounding the run. Metrics:
//
//   - reissued: secrets whose current PAT is a new one of the service account (each
//     secret once; the benchmark fails if any secret got two, or any other secret one);
//   - failed: offboarding outcomes that failed or need attention (throttling must be
//     waited out or rescheduled, never a failure);
//   - peak-RSS-MiB: the largest peak RSS (VmHWM) of the Offboarding and Rotate handler
//     processes;
//   - limit-use: PAT creates per full rate-limit window over the busy span (from the
//     emulator's record of each PAT's creation time), over the creates allowed per window;
//   - kv-requests-per-secret: Key Vault requests (list pages and GETs) while the
//     Offboarding invocation ran, over the 10,000 managed secrets. Rotate runs
//     meanwhile and its GETs are included: an upper bound for the search.
//
// Seeding uses the emulators' in-process APIs (Key Vault Put, devops IssuePAT); only
// the offboarding goes over the wire. Run with -benchtime 1x.
func BenchmarkOffboardingAtScale(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		sys := start(b, options{
			// One message per session (one per secret): with the host's 5 s idle
			// timeout, 8 session slots would bound the run, not the limiter.
			sessionIdle: 20 * time.Millisecond,
			// The timer sweep would read the 10,000 secrets too, in the middle of the
			// measurement.
			disable: []string{"Sweep"},
			settings: map[string]string{
				"PATROL_ALLOWED_ORGS":             stack.Organization + "," + secondOrg,
				"PATROL_ALLOWED_SERVICE_ACCOUNTS": stack.ServiceAccount + "=" + stack.Organization + "," + secondOrg,
			},
		})
		owned := seedAtScale(b, sys)
		costs := map[string]int{}
		for _, op := range []string{devopsemu.OpListPats, devopsemu.OpGetPat, devopsemu.OpUpdatePat, devopsemu.OpRevokePat,
			devopsemu.OpConnectionData, devopsemu.OpAdminRevoke, devopsemu.OpAdminList, devopsemu.OpGraphUsers, devopsemu.OpGraphUser} {
			costs[op] = 0
		}
		costs[devopsemu.OpCreatePat] = 1
		sys.Stack.DevOps.SetRateLimit(devopsemu.RateLimit{Limit: scaleCreates, Window: scaleWindow, Costs: costs})
		b.StartTimer()

		ctx := context.Background()
		kv := sys.Stack.KV.Journal()
		lists, gets := kv.Count(kvemu.OpListSecrets), kv.Count(kvemu.OpGetSecret)
		begin := sys.Stack.Clock.Now()
		msg := contract.OffboardingMessage{SchemaVersion: contract.SchemaVersion, EventID: "hr-" + rotation.NewOpID(), Person: contract.Person{UPN: stack.Person}}
		if err := sys.Ops.Bus.SendOffboarding(ctx, msg); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if c := sys.Host.Counts("Offboarding"); c.Succeeded+c.Failed > 0 {
				break // the first invocation's end: the search is done
			}
			if time.Now().After(deadline) {
				b.Fatal("the Offboarding invocation did not finish")
			}
		}
		lists, gets = kv.Count(kvemu.OpListSecrets)-lists, kv.Count(kvemu.OpGetSecret)-gets
		failed := waitReissued(b, sys, owned)
		b.StopTimer()

		reissued, creates := checkReissued(b, sys, owned, begin)
		b.ReportMetric(float64(reissued), "reissued")
		b.ReportMetric(float64(failed), "failed")
		// An Offboarding invocation that fails is retried (its re-issues are already
		// queued, and queued again under the same operation ids): not a re-issue's
		// failure, but reported, since the HR message ends dead-lettered if it persists.
		b.ReportMetric(float64(sys.Host.Counts("Offboarding").Failed), "offboarding-invocations-failed")
		peak := 0
		for group, pid := range sys.Host.HandlerPIDs() {
			if group == "function:Offboarding" || group == "function:Rotate" {
				peak = max(peak, peakRSS(b, pid))
			}
		}
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		b.ReportMetric(limitUse(creates, scaleWindow, scaleCreates), "limit-use")
		b.ReportMetric(float64(lists+gets)/scaleSecrets, "kv-requests-per-secret")
		dead, err := sys.PeekDeadLetters(ctx, contract.QueueOffboarding)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("offboarding search: %d list pages, %d GETs (all invocations: %d list pages); %d creates from %s to %s; %d HR messages dead-lettered",
			lists, gets, kv.Count(kvemu.OpListSecrets), len(creates), creates[0].Format(time.TimeOnly), creates[len(creates)-1].Format(time.TimeOnly), len(dead))
		b.StartTimer()
	}
}

// seedAtScale plants scaleSecrets managed secrets in process, alternately in the two
// organizations; the first scaleOwned hold the departing person's PATs (issued by the
// devops emulator, so they exist and authenticate), the rest name the service account.
// It returns the person's secrets.
func seedAtScale(tb testing.TB, sys *demo.System) map[string]bool {
	tb.Helper()
	ctx := context.Background()
	second := devopsemu.Organization{Name: secondOrg, TenantID: stack.TenantID}
	if _, err := sys.Stack.DevOps.AddOrganization(second); err != nil {
		tb.Fatal(err)
	}
	for _, upn := range []string{stack.ServiceAccount, stack.Person} {
		u, ok := sys.Stack.Entra.User(upn)
		if !ok {
			tb.Fatalf("no Entra user %s", upn)
		}
		if _, err := sys.Stack.DevOps.AddUser(secondOrg, devopsemu.User{ObjectID: u.ObjectID, UPN: upn, Admin: upn == stack.ServiceAccount}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sys.SignIn(ctx, stack.ServiceAccount); err != nil {
		tb.Fatal(err)
	}
	owned := map[string]bool{}
	now := sys.Stack.Clock.Now()
	exp, nbf := now.Add(60*24*time.Hour).Truncate(time.Second), now.Add(-30*24*time.Hour).Truncate(time.Second)
	for i := range scaleSecrets {
		name, org := fmt.Sprintf("pat-%05d", i), []string{stack.Organization, secondOrg}[i%2]
		tags := map[string]string{}
		for k, v := range svcPolicy {
			tags[k] = v
		}
		tags[rotation.TagOrg] = org
		value := "placeholder-" + name
		if i < scaleOwned {
			pat, v, err := sys.Stack.DevOps.IssuePAT(org, stack.Person, "release pipeline ("+stack.Person+")", "vso.code", exp)
			if err != nil {
				tb.Fatal(err)
			}
			tags[rotation.TagOwner], tags[rotation.TagPATID], value = strings.ToLower(stack.Person), pat.AuthorizationID, v
			owned[name] = true
		} else {
			tags[rotation.TagOwner], tags[rotation.TagPATID] = serviceAccount, fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		}
		if _, err := sys.Stack.KV.Put(stack.Vault, name, kvemu.NewSecret{Value: value, Tags: tags, Expires: &exp, NotBefore: &nbf}); err != nil {
			tb.Fatal(err)
		}
	}
	return owned
}

// waitReissued waits until every one of the person's secrets has an offboarding
// outcome that ended it (rotated, failed or needs attention) and returns how many did
// not end rotated.
func waitReissued(tb testing.TB, sys *demo.System, owned map[string]bool) int {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ended, failures := map[string]bool{}, []string{}
		for _, o := range sys.Outcomes.All() {
			if o.Trigger != rotation.TriggerOffboarding || !owned[o.Secret] {
				continue
			}
			switch o.Status {
			case rotation.StatusRotated:
				ended[o.Secret] = true
			case rotation.StatusFailed, rotation.StatusNeedsAttention:
				ended[o.Secret] = true
				failures = append(failures, fmt.Sprintf("%s: %s %s: %s", o.Secret, o.Status, o.Reason, o.Message))
			}
		}
		if len(ended) == len(owned) {
			for _, f := range failures {
				tb.Log(f)
			}
			return len(failures)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d of the person's secrets ended", len(ended), len(owned))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkReissued counts the person's secrets whose current PAT is one the service account
// created since begin, and fails unless every such PAT is some secret's current PAT
// (a secret given two new PATs leaves one behind) and no other secret changed hands.
// It returns the count and the creation times of those PATs.
func checkReissued(tb testing.TB, sys *demo.System, owned map[string]bool, begin time.Time) (int, []time.Time) {
	tb.Helper()
	created := map[string]devopsemu.PATInfo{}
	var times []time.Time
	for _, org := range []string{stack.Organization, secondOrg} {
		for _, p := range sys.Stack.DevOps.PATs(org) {
			if strings.EqualFold(p.OwnerUPN, stack.ServiceAccount) && !p.ValidFrom.Before(begin) {
				created[p.AuthorizationID] = p
				times = append(times, p.ValidFrom)
			}
		}
	}
	if len(times) == 0 {
		tb.Fatal("the service account created no PAT")
	}
	slices.SortFunc(times, time.Time.Compare)
	secrets, err := sys.Stack.KV.Secrets(stack.Vault)
	if err != nil {
		tb.Fatal(err)
	}
	reissued, current := 0, map[string]bool{}
	for _, s := range secrets {
		tags := s.Current.Tags
		if tags[rotation.TagManaged] != "true" {
			continue // patrol's own secrets
		}
		if !owned[s.Name] {
			if s.VersionCount != 1 {
				tb.Errorf("%s, not the person's, has %d versions", s.Name, s.VersionCount)
			}
			continue
		}
		id := tags[rotation.TagPATID]
		if p, ok := created[id]; ok && !current[id] && strings.EqualFold(tags[rotation.TagOwner], stack.ServiceAccount) && p.Org == strings.ToLower(tags[rotation.TagOrg]) {
			reissued++
		}
		current[id] = true
	}
	if len(created) != reissued {
		tb.Errorf("the service account created %d PATs for %d re-issued secrets: some secret got more than one", len(created), reissued)
	}
	return reissued, times
}

// limitUse is the creates per full window over the busy span (from the first create
// to the last, whole windows only) divided by the creates allowed per window.
func limitUse(times []time.Time, win time.Duration, allowed int) float64 {
	full := int(times[len(times)-1].Sub(times[0]) / win)
	if full == 0 {
		return float64(len(times)) / float64(allowed)
	}
	end := times[0].Add(time.Duration(full) * win)
	n := 0
	for _, t := range times {
		if t.Before(end) {
			n++
		}
	}
	return float64(n) / float64(full) / float64(allowed)
}
