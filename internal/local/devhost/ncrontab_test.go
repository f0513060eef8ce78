package devhost

import (
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 3, 7, 0, time.UTC) // a Friday
	cases := map[string]struct {
		expr string
		want []time.Time // the next occurrences after base, in order
	}{
		"every five minutes fires on the next multiple of five": {
			expr: "0 */5 * * * *",
			want: []time.Time{time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 10, 0, 0, time.UTC)},
		},
		"patrol's default sweep runs every six hours on the hour": {
			expr: "0 0 */6 * * *",
			want: []time.Time{time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)},
		},
		"the seconds field is honoured": {
			expr: "*/30 * * * * *",
			want: []time.Time{time.Date(2026, 11, 27, 10, 3, 30, 0, time.UTC), time.Date(2026, 11, 27, 10, 4, 0, 0, time.UTC)},
		},
		"weekday names and ranges work": {
			expr: "0 30 9 * * Mon-Fri",
			want: []time.Time{time.Date(2026, 11, 30, 9, 30, 0, 0, time.UTC), time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)},
		},
		"a time span is a fixed interval": {
			expr: "00:15:00",
			want: []time.Time{base.Add(15 * time.Minute), base.Add(30 * time.Minute)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := ParseSchedule(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			at := base
			for i, w := range tc.want {
				at = s.Next(at)
				if !at.Equal(w) {
					t.Fatalf("occurrence %d = %s, want %s", i, at, w)
				}
			}
		})
	}
}

func TestParseScheduleRejectsBadExpressions(t *testing.T) {
	cases := map[string]struct{ expr, want string }{
		"five fields (classic cron) are refused": {expr: "*/5 * * * *", want: "6"},
		"seven fields are refused":               {expr: "0 0 0 * * * 2027", want: "6"},
		"an out-of-range minute is refused":      {expr: "0 61 * * * *", want: "0 61 * * * *"},
		"garbage is refused":                     {expr: "every day", want: "every day"},
		"descriptors are not NCRONTAB":           {expr: "@daily", want: "@daily"},
		"an empty schedule is refused":           {expr: "  ", want: "empty"},
		"a zero time span is refused":            {expr: "00:00:00", want: "interval"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSchedule(tc.expr)
			if err == nil {
				t.Fatalf("ParseSchedule(%q) succeeded", tc.expr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestIsPastDue(t *testing.T) {
	s, _ := ParseSchedule("0 */5 * * * *")
	at := time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC)
	cases := map[string]struct {
		tk   tick
		want bool
	}{
		"a tick run at its time is on time":                {tk: tick{scheduled: at, firedAt: at}, want: false},
		"a tick run a little late is on time":              {tk: tick{scheduled: at, firedAt: at.Add(time.Minute)}, want: false},
		"a tick run after the next occurrence is past due": {tk: tick{scheduled: at, firedAt: at.Add(5 * time.Minute)}, want: true},
		"a run on startup is never past due":               {tk: tick{firedAt: at.Add(time.Hour)}, want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := isPastDue(s, tc.tk); got != tc.want {
				t.Errorf("isPastDue = %v, want %v", got, tc.want)
			}
		})
	}
}
