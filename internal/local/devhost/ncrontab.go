package devhost

import (
	"fmt"
	"strings"
	"time"

	cron "github.com/netresearch/go-cron"
)

// Schedule is a timer trigger's schedule: the next occurrence strictly after a time.
type Schedule interface {
	Next(after time.Time) time.Time
}

// ncrontabParser reads the six-field NCRONTAB the Functions timer trigger uses:
// {second} {minute} {hour} {day} {month} {day-of-week}. Day and weekday must both match
// (NCrontab semantics, and go-cron's default). No descriptors (@daily): the host
// rejects them too.
var ncrontabParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// ParseSchedule parses a timer schedule: a six-field NCRONTAB expression, or a
// TimeSpan "hh:mm:ss" (a fixed interval, which the host accepts on dedicated plans).
// Times are UTC: Flex Consumption does not support WEBSITE_TIME_ZONE.
func ParseSchedule(expr string) (Schedule, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, fmt.Errorf("schedule is empty")
	}
	if strings.Contains(expr, ":") && !strings.Contains(expr, " ") {
		d, err := ParseTimeSpan(expr)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("schedule %q: not a positive hh:mm:ss interval", expr)
		}
		return interval(d), nil
	}
	if n := len(strings.Fields(expr)); n != 6 {
		return nil, fmt.Errorf("schedule %q: %d fields, NCRONTAB needs 6 ({second} {minute} {hour} {day} {month} {day-of-week})", expr, n)
	}
	s, err := ncrontabParser.Parse("TZ=UTC " + expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	return utcSchedule{s}, nil
}

type utcSchedule struct{ s cron.Schedule }

func (u utcSchedule) Next(after time.Time) time.Time { return u.s.Next(after.UTC()).UTC() }

// interval is a TimeSpan schedule: every d, counted from the previous occurrence.
type interval time.Duration

func (d interval) Next(after time.Time) time.Time { return after.Add(time.Duration(d)).UTC() }
