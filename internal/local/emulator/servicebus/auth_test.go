package servicebus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sasToken signs like the Go SDK (sr lower-cased and escaped) or, with jsStyle, like the
// JS SDK (sr escaped with upper-case hex, not lower-cased).
func sasToken(audience, keyName, key string, expiry time.Time, jsStyle bool) string {
	sr := strings.ToLower(url.QueryEscape(audience))
	if jsStyle {
		sr = strings.ReplaceAll(url.PathEscape(audience), ":", "%3A")
		sr = strings.ReplaceAll(sr, "/", "%2F")
	}
	se := strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(mac, "%s\n%s", sr, se)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return fmt.Sprintf("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, sig, se, url.QueryEscape(keyName))
}

func TestValidateSAS(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	keys := map[string]string{"root": "secret-key"}
	later := now.Add(time.Hour)
	tests := map[string]struct {
		token    string
		wantPath string
		wantErr  error
	}{
		"a Go SDK token for a queue":                       {sasToken("amqp://localhost:5672/Orders", "root", "secret-key", later, false), "orders", nil},
		"a JS SDK token with upper-case escapes":           {sasToken("sb://localhost:5672/orders/$management", "root", "secret-key", later, true), "orders/$management", nil},
		"a namespace-wide token":                           {sasToken("sb://localhost/", "root", "secret-key", later, false), "", nil},
		"a token signed with the wrong key":                {sasToken("amqp://h/orders", "root", "other-key", later, false), "", errTokenSignature},
		"a token naming an unknown key":                    {sasToken("amqp://h/orders", "nobody", "secret-key", later, false), "", errTokenKey},
		"an expired token":                                 {sasToken("amqp://h/orders", "root", "secret-key", now.Add(-time.Second), false), "", errTokenExpired},
		"a token without the SharedAccessSignature prefix": {"sr=a&sig=b&se=1&skn=root", "", errTokenMalformed},
		"a token missing its signature":                    {"SharedAccessSignature sr=a&se=1&skn=root", "", errTokenMalformed},
		"a signature that is not base64":                   {"SharedAccessSignature sr=a&sig=***&se=1&skn=root", "", errTokenMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g, err := validateSAS(tc.token, keys, now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && g.Path != tc.wantPath {
				t.Fatalf("path = %q, want %q", g.Path, tc.wantPath)
			}
			if err != nil && strings.Contains(err.Error(), "secret-key") {
				t.Fatal("the error contains the key")
			}
		})
	}
}

func TestGrantCoversEntityAndItsChildrenOnly(t *testing.T) {
	tests := map[string]struct {
		grant, addr string
		want        bool
	}{
		"the entity itself":                         {"orders", "Orders", true},
		"its management node":                       {"orders", "orders/$management", true},
		"its dead-letter queue":                     {"orders", "orders/$DeadLetterQueue", true},
		"a namespace grant covers everything":       {"", "anything/at/all", true},
		"an entity sharing a prefix is not covered": {"orders", "orders-archive", false},
		"another entity is not covered":             {"orders", "payments", false},
		"a subscription under its topic":            {"events", "events/Subscriptions/all", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := covers(tc.grant, tc.addr); got != tc.want {
				t.Fatalf("covers(%q, %q) = %v", tc.grant, tc.addr, got)
			}
		})
	}
}
