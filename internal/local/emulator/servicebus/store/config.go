package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is Microsoft's Service Bus emulator Config.json, field for field
// (Azure/azure-service-bus-emulator-installer ServiceBus-Emulator/Schema/Config-schema.json),
// so a team's existing emulator configuration works unchanged. Unknown fields are
// ignored, as Microsoft's schema allows them.
type Config struct {
	UserConfig UserConfig `json:"UserConfig"`
}

// UserConfig holds the namespaces and the logging setting.
type UserConfig struct {
	Namespaces []Namespace `json:"Namespaces"`
	Logging    Logging     `json:"Logging"`
}

// Logging is accepted for compatibility; the broker logs through its injected slog.Logger.
type Logging struct {
	Type string `json:"Type,omitempty"`
}

// Namespace groups entities. Microsoft's emulator allows exactly one ("sbemulatorns");
// the store accepts several and treats entity names as one flat space.
type Namespace struct {
	Name   string  `json:"Name"`
	Queues []Queue `json:"Queues"`
	Topics []Topic `json:"Topics"`
}

// Queue is a queue and its properties.
type Queue struct {
	Name       string          `json:"Name"`
	Properties QueueProperties `json:"Properties"`
}

// QueueProperties are the per-queue settings. Durations are ISO-8601 ("PT1M").
type QueueProperties struct {
	DeadLetteringOnMessageExpiration    bool   `json:"DeadLetteringOnMessageExpiration"`
	DefaultMessageTimeToLive            string `json:"DefaultMessageTimeToLive,omitempty"`
	DuplicateDetectionHistoryTimeWindow string `json:"DuplicateDetectionHistoryTimeWindow,omitempty"`
	ForwardDeadLetteredMessagesTo       string `json:"ForwardDeadLetteredMessagesTo,omitempty"`
	ForwardTo                           string `json:"ForwardTo,omitempty"`
	LockDuration                        string `json:"LockDuration,omitempty"`
	MaxDeliveryCount                    int    `json:"MaxDeliveryCount,omitempty"`
	RequiresDuplicateDetection          bool   `json:"RequiresDuplicateDetection"`
	RequiresSession                     bool   `json:"RequiresSession"`
}

// Topic is a topic with its subscriptions.
type Topic struct {
	Name          string          `json:"Name"`
	Properties    TopicProperties `json:"Properties"`
	Subscriptions []Subscription  `json:"Subscriptions"`
}

// TopicProperties are the per-topic settings.
type TopicProperties struct {
	DefaultMessageTimeToLive            string `json:"DefaultMessageTimeToLive,omitempty"`
	DuplicateDetectionHistoryTimeWindow string `json:"DuplicateDetectionHistoryTimeWindow,omitempty"`
	RequiresDuplicateDetection          bool   `json:"RequiresDuplicateDetection"`
}

// Subscription is a topic subscription with its rules.
type Subscription struct {
	Name       string                 `json:"Name"`
	Properties SubscriptionProperties `json:"Properties"`
	Rules      []Rule                 `json:"Rules,omitempty"`
}

// SubscriptionProperties are the per-subscription settings.
type SubscriptionProperties struct {
	DeadLetteringOnMessageExpiration bool   `json:"DeadLetteringOnMessageExpiration"`
	DefaultMessageTimeToLive         string `json:"DefaultMessageTimeToLive,omitempty"`
	LockDuration                     string `json:"LockDuration,omitempty"`
	MaxDeliveryCount                 int    `json:"MaxDeliveryCount,omitempty"`
	ForwardDeadLetteredMessagesTo    string `json:"ForwardDeadLetteredMessagesTo,omitempty"`
	ForwardTo                        string `json:"ForwardTo,omitempty"`
	RequiresSession                  bool   `json:"RequiresSession"`
}

// Rule is a subscription filter rule.
type Rule struct {
	Name       string         `json:"Name"`
	Properties RuleProperties `json:"Properties"`
}

// RuleProperties select the filter kind; FilterType is "Correlation" or "Sql".
type RuleProperties struct {
	FilterType        string             `json:"FilterType"`
	CorrelationFilter *CorrelationFilter `json:"CorrelationFilter,omitempty"`
	SqlFilter         *SQLExpression     `json:"SqlFilter,omitempty"`
	Action            *SQLExpression     `json:"Action,omitempty"`
}

// CorrelationFilter matches when every field it sets equals the message's; Label is the
// message Subject and Properties are application properties.
type CorrelationFilter struct {
	ContentType      string         `json:"ContentType,omitempty"`
	CorrelationID    string         `json:"CorrelationId,omitempty"`
	Label            string         `json:"Label,omitempty"`
	MessageID        string         `json:"MessageId,omitempty"`
	ReplyTo          string         `json:"ReplyTo,omitempty"`
	ReplyToSessionID string         `json:"ReplyToSessionId,omitempty"`
	SessionID        string         `json:"SessionId,omitempty"`
	To               string         `json:"To,omitempty"`
	Properties       map[string]any `json:"Properties,omitempty"`
}

// SQLExpression is a SQL filter or action. Only the constant filters "1=1" and "1=0"
// are evaluated; any other expression is accepted, logged, and treated as "1=1".
type SQLExpression struct {
	SqlExpression string `json:"SqlExpression"`
}

// Defaults and limits. Defaults are Microsoft's emulator's (its schema); limits are the
// real service's where the emulator's are stricter than tests need.
const (
	DefaultLockDuration     = time.Minute
	DefaultMaxDeliveryCount = 3
	DefaultTTL              = time.Hour
	DefaultDuplicateWindow  = 20 * time.Second

	minLockDuration    = time.Second
	maxLockDuration    = 5 * time.Minute
	maxDeliveryCount   = 2000
	maxDuplicateWindow = 7 * 24 * time.Hour
	maxForwardHops     = 4
)

// ParseConfig decodes and validates a Config.json document.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("servicebus config: %w", err)
	}
	if dec.More() {
		return Config{}, errors.New("servicebus config: trailing data after the JSON object")
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadConfigFile reads and parses a Config.json file.
func LoadConfigFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("servicebus config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every entity and property and names the first one that is wrong.
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// Merge returns a's entities followed by b's, in a's first namespace, so `patrol-dev local`
// can put a user's entities beside patrol's. An entity name defined in both is an error
// naming it (the user must rename theirs rather than silently change patrol's).
func Merge(a, b Config) (Config, error) {
	out := Config{UserConfig: UserConfig{Logging: a.UserConfig.Logging}}
	if out.UserConfig.Logging.Type == "" {
		out.UserConfig.Logging = b.UserConfig.Logging
	}
	var ns Namespace
	seen := map[string]string{}
	for _, src := range []Config{a, b} {
		for _, n := range src.UserConfig.Namespaces {
			if ns.Name == "" {
				ns.Name = n.Name
			}
			for _, q := range n.Queues {
				if prev, dup := seen[strings.ToLower(q.Name)]; dup {
					return Config{}, fmt.Errorf("servicebus config: queue %q is already defined as a %s", q.Name, prev)
				}
				seen[strings.ToLower(q.Name)] = "queue"
				ns.Queues = append(ns.Queues, q)
			}
			for _, t := range n.Topics {
				if prev, dup := seen[strings.ToLower(t.Name)]; dup {
					return Config{}, fmt.Errorf("servicebus config: topic %q is already defined as a %s", t.Name, prev)
				}
				seen[strings.ToLower(t.Name)] = "topic"
				ns.Topics = append(ns.Topics, t)
			}
		}
	}
	if ns.Name == "" {
		ns.Name = "sbemulatorns"
	}
	out.UserConfig.Namespaces = []Namespace{ns}
	return out, nil
}

// PatrolConfig returns patrol's own entities (docs/architecture.md). TTLs are long
// because a revocation is scheduled a grace period ahead and commands must not vanish
// while a developer's stack is paused; expiry dead-letters so nothing disappears silently.
func PatrolConfig() Config {
	queue := func(name string, session, dedup bool) Queue {
		return Queue{Name: name, Properties: QueueProperties{
			DeadLetteringOnMessageExpiration:    true,
			DefaultMessageTimeToLive:            "P14D",
			DuplicateDetectionHistoryTimeWindow: "PT10M",
			LockDuration:                        "PT1M",
			MaxDeliveryCount:                    10,
			RequiresDuplicateDetection:          dedup,
			RequiresSession:                     session,
		}}
	}
	return Config{UserConfig: UserConfig{
		Namespaces: []Namespace{{
			Name: "sbemulatorns",
			Queues: []Queue{
				queue("hr-offboarding", false, false),
				queue("pat-rotations", true, true),
				queue("pat-revocations", false, true),
				// Replies are copies of pat-events outcomes, read by peeking: they
				// expire after a day without dead-lettering (contract.ReplyTTL).
				{Name: "pat-replies", Properties: QueueProperties{
					DefaultMessageTimeToLive:            "P1D",
					DuplicateDetectionHistoryTimeWindow: "PT10M",
					LockDuration:                        "PT1M",
					MaxDeliveryCount:                    10,
					RequiresDuplicateDetection:          true,
					RequiresSession:                     true,
				}},
			},
			Topics: []Topic{{
				Name:       "pat-events",
				Properties: TopicProperties{DefaultMessageTimeToLive: "P14D"},
				Subscriptions: []Subscription{{
					Name: "all",
					Properties: SubscriptionProperties{
						DeadLetteringOnMessageExpiration: true,
						DefaultMessageTimeToLive:         "P14D",
						LockDuration:                     "PT1M",
						MaxDeliveryCount:                 10,
					},
				}},
			}},
		}},
		Logging: Logging{Type: "Console"},
	}}
}

// entityConfig is a validated entity's settings.
type entityConfig struct {
	lockDuration    time.Duration
	maxDelivery     int
	ttl             time.Duration
	dupWindow       time.Duration
	requiresDup     bool
	requiresSession bool
	dlqOnExpiry     bool
	forwardTo       string
	forwardDLQTo    string
}

type compiledSub struct {
	name  string
	cfg   entityConfig
	rules []compiledRule
}

type compiledTopic struct {
	name string
	cfg  entityConfig
	subs []compiledSub
}

type compiledQueue struct {
	name string
	cfg  entityConfig
}

type compiledConfig struct {
	queues []compiledQueue
	topics []compiledTopic
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9]$|^[A-Za-z0-9][\w\-./]*[A-Za-z0-9]$`)

// compile validates c and converts it to the store's form.
func compile(c Config) (compiledConfig, error) {
	var out compiledConfig
	names := map[string]string{}
	claim := func(kind, name string) error {
		if !namePattern.MatchString(name) {
			return fmt.Errorf("servicebus config: %s %q: Name must be letters, digits, '-', '_', '.', '/' and start and end with a letter or digit", kind, name)
		}
		key := strings.ToLower(name)
		if prev, dup := names[key]; dup {
			return fmt.Errorf("servicebus config: %s %q: the name is already used by a %s (names are case-insensitive)", kind, name, prev)
		}
		names[key] = kind
		return nil
	}
	for _, ns := range c.UserConfig.Namespaces {
		for _, q := range ns.Queues {
			if err := claim("queue", q.Name); err != nil {
				return out, err
			}
			p := q.Properties
			ec, err := entitySettings(p.LockDuration, p.MaxDeliveryCount, p.DefaultMessageTimeToLive, p.DuplicateDetectionHistoryTimeWindow)
			if err != nil {
				return out, fmt.Errorf("servicebus config: queue %q: %w", q.Name, err)
			}
			ec.requiresDup, ec.requiresSession, ec.dlqOnExpiry = p.RequiresDuplicateDetection, p.RequiresSession, p.DeadLetteringOnMessageExpiration
			ec.forwardTo, ec.forwardDLQTo = p.ForwardTo, p.ForwardDeadLetteredMessagesTo
			out.queues = append(out.queues, compiledQueue{name: q.Name, cfg: ec})
		}
		for _, t := range ns.Topics {
			if err := claim("topic", t.Name); err != nil {
				return out, err
			}
			p := t.Properties
			ec, err := entitySettings("", 0, p.DefaultMessageTimeToLive, p.DuplicateDetectionHistoryTimeWindow)
			if err != nil {
				return out, fmt.Errorf("servicebus config: topic %q: %w", t.Name, err)
			}
			ec.requiresDup = p.RequiresDuplicateDetection
			ct := compiledTopic{name: t.Name, cfg: ec}
			subNames := map[string]bool{}
			for _, s := range t.Subscriptions {
				where := fmt.Sprintf("topic %q subscription %q", t.Name, s.Name)
				if !namePattern.MatchString(s.Name) {
					return out, fmt.Errorf("servicebus config: %s: Name must be letters, digits, '-', '_', '.', '/' and start and end with a letter or digit", where)
				}
				if subNames[strings.ToLower(s.Name)] {
					return out, fmt.Errorf("servicebus config: %s: defined twice", where)
				}
				subNames[strings.ToLower(s.Name)] = true
				sp := s.Properties
				sc, err := entitySettings(sp.LockDuration, sp.MaxDeliveryCount, sp.DefaultMessageTimeToLive, "")
				if err != nil {
					return out, fmt.Errorf("servicebus config: %s: %w", where, err)
				}
				sc.requiresSession, sc.dlqOnExpiry = sp.RequiresSession, sp.DeadLetteringOnMessageExpiration
				sc.forwardTo, sc.forwardDLQTo = sp.ForwardTo, sp.ForwardDeadLetteredMessagesTo
				cs := compiledSub{name: s.Name, cfg: sc}
				for i, r := range s.Rules {
					cr, err := compileRule(r)
					if err != nil {
						return out, fmt.Errorf("servicebus config: %s rule %d (%q): %w", where, i, r.Name, err)
					}
					cs.rules = append(cs.rules, cr)
				}
				ct.subs = append(ct.subs, cs)
			}
			out.topics = append(out.topics, ct)
		}
	}
	// Forwarding targets must exist; checked after every name is known.
	check := func(where, prop, target string) error {
		if target == "" {
			return nil
		}
		kind, ok := names[strings.ToLower(target)]
		if !ok {
			return fmt.Errorf("servicebus config: %s: %s %q: no such queue or topic", where, prop, target)
		}
		_ = kind
		return nil
	}
	for _, q := range out.queues {
		where := fmt.Sprintf("queue %q", q.name)
		if err := check(where, "ForwardTo", q.cfg.forwardTo); err != nil {
			return out, err
		}
		if strings.EqualFold(q.cfg.forwardTo, q.name) {
			return out, fmt.Errorf("servicebus config: %s: ForwardTo %q: a queue cannot forward to itself", where, q.cfg.forwardTo)
		}
		if err := check(where, "ForwardDeadLetteredMessagesTo", q.cfg.forwardDLQTo); err != nil {
			return out, err
		}
	}
	for _, t := range out.topics {
		for _, s := range t.subs {
			where := fmt.Sprintf("topic %q subscription %q", t.name, s.name)
			if err := check(where, "ForwardTo", s.cfg.forwardTo); err != nil {
				return out, err
			}
			if err := check(where, "ForwardDeadLetteredMessagesTo", s.cfg.forwardDLQTo); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// entitySettings parses the shared properties, applying Microsoft's emulator defaults
// to empty values. Errors name the property and the value.
func entitySettings(lock string, maxDelivery int, ttl, dup string) (entityConfig, error) {
	ec := entityConfig{lockDuration: DefaultLockDuration, maxDelivery: DefaultMaxDeliveryCount, ttl: DefaultTTL, dupWindow: DefaultDuplicateWindow}
	if lock != "" {
		d, err := ParseISODuration(lock)
		if err != nil {
			return ec, fmt.Errorf("LockDuration %q: %w", lock, err)
		}
		if d < minLockDuration || d > maxLockDuration {
			return ec, fmt.Errorf("LockDuration %q: must be between PT1S and PT5M", lock)
		}
		ec.lockDuration = d
	}
	switch {
	case maxDelivery < 0 || maxDelivery > maxDeliveryCount:
		return ec, fmt.Errorf("MaxDeliveryCount %d: must be between 1 and %d", maxDelivery, maxDeliveryCount)
	case maxDelivery > 0:
		ec.maxDelivery = maxDelivery
	}
	if ttl != "" {
		d, err := ParseISODuration(ttl)
		if err != nil {
			return ec, fmt.Errorf("DefaultMessageTimeToLive %q: %w", ttl, err)
		}
		if d <= 0 {
			return ec, fmt.Errorf("DefaultMessageTimeToLive %q: must be positive", ttl)
		}
		ec.ttl = d
	}
	if dup != "" {
		d, err := ParseISODuration(dup)
		if err != nil {
			return ec, fmt.Errorf("DuplicateDetectionHistoryTimeWindow %q: %w", dup, err)
		}
		if d <= 0 || d > maxDuplicateWindow {
			return ec, fmt.Errorf("DuplicateDetectionHistoryTimeWindow %q: must be positive and at most P7D", dup)
		}
		ec.dupWindow = d
	}
	return ec, nil
}

var isoDuration = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// ParseISODuration parses an ISO-8601 duration such as "PT1H", "P14D" or "PT0.5S". A
// year is 365 days and a month 30 days. Values beyond time.Duration's range (the
// service's "infinite" TTL, P10675199DT2H48M5.4775807S) saturate at the maximum.
func ParseISODuration(s string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return 0, errors.New("not an ISO-8601 duration like PT1M, PT30S or P1D")
	}
	units := []float64{365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1}
	var secs float64
	for i, unit := range units {
		if m[i+1] == "" {
			continue
		}
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return 0, errors.New("not an ISO-8601 duration like PT1M, PT30S or P1D")
		}
		secs += v * unit
	}
	if secs >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}
