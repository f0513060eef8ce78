package contract

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// account builds an account of one person over two organizations with n PATs of each
// class in each.
func account(n int) PersonAccount {
	acc := PersonAccount{Person: Person{UPN: "alice@contoso.com"}, EventID: "hr-1", Time: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	for _, org := range []string{"contoso", "fabrikam"} {
		o := OrgAccount{Org: org, ListedBy: "svc-build@contoso.com", PATs: []AccountPAT{}}
		for _, class := range []PATClass{PATManaged, PATUnmanaged, PATServiceAccount} {
			for i := range n {
				o.PATs = append(o.PATs, AccountPAT{
					PATID: fmt.Sprintf("%08d-0000-4000-8000-%012d", i, len(o.PATs)), DisplayName: "pipeline " + strings.Repeat("x", 40),
					Org: org, Scopes: []string{"vso.build", "vso.code"}, Expires: acc.Time.Add(90 * 24 * time.Hour), Class: class,
					Secret: fmt.Sprintf("pat-%s-%d", class, i), ServiceAccount: "svc-build@contoso.com",
					NewPATID: "11111111-2222-4333-8444-555555555555", RevokeAt: acc.Time.Add(72 * time.Hour), Action: "re-issued under svc-build@contoso.com; hers is revoked at the end of the grace period",
				})
			}
		}
		acc.Organizations = append(acc.Organizations, o)
	}
	return acc
}

func count(a PersonAccount) (listed, omitted int, byClass map[PATClass]int) {
	byClass = map[PATClass]int{}
	for _, o := range a.Organizations {
		listed += len(o.PATs)
		omitted += o.Omitted
		for _, p := range o.PATs {
			byClass[p.Class]++
		}
	}
	return listed, omitted, byClass
}

func TestTrimmed(t *testing.T) {
	tests := map[string]struct {
		perClass, max        int
		wantListed, wantOmit int
		wantClass            map[PATClass]int
	}{
		"an account within the bound is listed whole": {
			perClass: 2, max: 12, wantListed: 12, wantOmit: 0,
			wantClass: map[PATClass]int{PATManaged: 4, PATUnmanaged: 4, PATServiceAccount: 4},
		},
		"over the bound, service-account PATs come first, then unmanaged, and the rest is counted": {
			perClass: 5, max: 16, wantListed: 16, wantOmit: 14,
			wantClass: map[PATClass]int{PATServiceAccount: 10, PATUnmanaged: 6},
		},
		"a bound smaller than the service-account PATs lists only those": {
			perClass: 5, max: 3, wantListed: 3, wantOmit: 27,
			wantClass: map[PATClass]int{PATServiceAccount: 3},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := account(tc.perClass).Trimmed(tc.max)
			listed, omitted, byClass := count(got)
			if listed != tc.wantListed || omitted != tc.wantOmit {
				t.Errorf("listed %d, omitted %d; want %d, %d", listed, omitted, tc.wantListed, tc.wantOmit)
			}
			for class, want := range tc.wantClass {
				if byClass[class] != want {
					t.Errorf("%d %s PATs listed, want %d", byClass[class], class, want)
				}
			}
			if len(got.Organizations) != 2 {
				t.Errorf("%d organizations, want both kept", len(got.Organizations))
			}
		})
	}
}

// An offboarding report over a thousand PATs still fits one Service Bus message
// (256 KB on the Standard tier): found by BenchmarkOffboardingAtScale, where the
// untrimmed report failed every delivery and the HR message was dead-lettered.
func TestATrimmedReportOfAThousandPATsFitsAServiceBusMessage(t *testing.T) {
	acc := account(170) // 1,020 PATs
	whole, err := json.Marshal(Outcome{Status: StatusOffboardingReport, Account: &acc})
	if err != nil {
		t.Fatal(err)
	}
	trimmed := acc.Trimmed(MaxReportedPATs)
	body, err := json.Marshal(Outcome{Status: StatusOffboardingReport, Account: &trimmed})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 256 * 1024
	if len(whole) <= limit {
		t.Fatalf("the untrimmed report is %d bytes: the fixture is too small to test the bound", len(whole))
	}
	if len(body) > limit*3/4 {
		t.Errorf("the trimmed report is %d bytes, want well under Service Bus's %d", len(body), limit)
	}
}
