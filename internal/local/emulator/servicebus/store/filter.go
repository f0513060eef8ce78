package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/go-amqp"
)

// compiledRule is one subscription rule. A subscription receives a message when any of
// its rules matches; a subscription without rules has the service's default rule
// (TrueFilter).
type compiledRule struct {
	name        string
	always      *bool              // SQL constant filter: true (1=1) or false (1=0)
	correlation *CorrelationFilter // correlation filter
	warning     string             // why a SQL filter or action is not evaluated
}

func compileRule(r Rule) (compiledRule, error) {
	cr := compiledRule{name: r.Name}
	p := r.Properties
	if p.Action != nil && strings.TrimSpace(p.Action.SqlExpression) != "" {
		cr.warning = fmt.Sprintf("rule action %q is ignored (rule actions are not supported)", p.Action.SqlExpression)
	}
	switch strings.ToLower(p.FilterType) {
	case "correlation":
		if p.CorrelationFilter == nil {
			return cr, errors.New(`FilterType "Correlation" needs a CorrelationFilter`)
		}
		f := *p.CorrelationFilter
		if f.ContentType+f.CorrelationID+f.Label+f.MessageID+f.ReplyTo+f.ReplyToSessionID+f.SessionID+f.To == "" && len(f.Properties) == 0 {
			return cr, errors.New("CorrelationFilter: set at least one property")
		}
		for k, v := range f.Properties {
			switch v.(type) {
			case string, float64, bool:
			default:
				return cr, fmt.Errorf("CorrelationFilter Properties %q: value must be a string, number or boolean", k)
			}
		}
		cr.correlation = &f
	case "sql":
		if p.SqlFilter == nil {
			return cr, errors.New(`FilterType "Sql" needs a SqlFilter`)
		}
		expr := strings.ToLower(strings.Join(strings.Fields(p.SqlFilter.SqlExpression), ""))
		t, f := true, false
		switch expr {
		case "1=1", "true":
			cr.always = &t
		case "1=0", "false":
			cr.always = &f
		default:
			// Accept so existing configs load; the rule then matches everything, which makes
			// a test see too many messages rather than silently lose them.
			cr.always = &t
			cr.warning = fmt.Sprintf("SQL filter %q is not evaluated and matches every message", p.SqlFilter.SqlExpression)
		}
	default:
		return cr, fmt.Errorf("FilterType %q: must be \"Correlation\" or \"Sql\"", p.FilterType)
	}
	return cr, nil
}

func (r compiledRule) matches(m *Message) bool {
	if r.always != nil {
		return *r.always
	}
	f := r.correlation
	a := m.AMQP
	var props amqp.MessageProperties
	if a != nil && a.Properties != nil {
		props = *a.Properties
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	checks := []struct{ want, got string }{
		{f.ContentType, str(props.ContentType)},
		{f.CorrelationID, idString(props.CorrelationID)},
		{f.Label, str(props.Subject)},
		{f.MessageID, m.MessageID},
		{f.ReplyTo, str(props.ReplyTo)},
		{f.ReplyToSessionID, str(props.ReplyToGroupID)},
		{f.SessionID, m.SessionID},
		{f.To, str(props.To)},
	}
	for _, c := range checks {
		if c.want != "" && c.want != c.got {
			return false
		}
	}
	for k, want := range f.Properties {
		if a == nil {
			return false
		}
		got, ok := a.ApplicationProperties[k]
		if !ok || !sameValue(want, got) {
			return false
		}
	}
	return true
}

// sameValue compares a JSON filter value with an AMQP application property: numbers by
// value whatever their AMQP width, everything else by its text.
func sameValue(want, got any) bool {
	if w, ok := want.(float64); ok {
		switch g := got.(type) {
		case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint, float32, float64:
			var f float64
			fmt.Sscan(fmt.Sprint(g), &f)
			return f == w
		}
		return false
	}
	if w, ok := want.(bool); ok {
		g, ok := got.(bool)
		return ok && g == w
	}
	return fmt.Sprint(want) == fmt.Sprint(got)
}
