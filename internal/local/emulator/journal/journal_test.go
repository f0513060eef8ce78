package journal

import "testing"

func TestJournalKeepsTheNewestEntriesAndCountsAll(t *testing.T) {
	j := New(2)
	for _, op := range []string{"GetSecret", "SetSecret", "GetSecret"} {
		j.Add(Entry{Operation: op})
	}
	es := j.Entries()
	if len(es) != 2 || es[0].Operation != "SetSecret" || es[1].Operation != "GetSecret" {
		t.Fatalf("entries = %+v, want the last two in order", es)
	}
	if j.Count("GetSecret") != 2 || j.Count("SetSecret") != 1 {
		t.Fatalf("counts = %v", j.Counts())
	}
	j.Reset()
	if len(j.Entries()) != 0 || j.Count("GetSecret") != 0 {
		t.Fatal("Reset left entries or counts behind")
	}
}
