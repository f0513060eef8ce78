package store

import (
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/local/emulator/clock"
)

// microsoftSample is the shape of Microsoft's emulator sample Config.json
// (Azure/azure-service-bus-emulator-installer, ServiceBus-Emulator/Config/Config.json).
const microsoftSample = `{
  "UserConfig": {
    "Namespaces": [
      {
        "Name": "sbemulatorns",
        "Queues": [
          {
            "Name": "queue.1",
            "Properties": {
              "DeadLetteringOnMessageExpiration": false,
              "DefaultMessageTimeToLive": "PT1H",
              "DuplicateDetectionHistoryTimeWindow": "PT20S",
              "ForwardDeadLetteredMessagesTo": "",
              "ForwardTo": "",
              "LockDuration": "PT1M",
              "MaxDeliveryCount": 3,
              "RequiresDuplicateDetection": false,
              "RequiresSession": false
            }
          }
        ],
        "Topics": [
          {
            "Name": "topic.1",
            "Properties": {
              "DefaultMessageTimeToLive": "PT1H",
              "DuplicateDetectionHistoryTimeWindow": "PT20S",
              "RequiresDuplicateDetection": false
            },
            "Subscriptions": [
              {
                "Name": "subscription.1",
                "Properties": {
                  "DeadLetteringOnMessageExpiration": false,
                  "DefaultMessageTimeToLive": "PT1H",
                  "LockDuration": "PT1M",
                  "MaxDeliveryCount": 3,
                  "ForwardDeadLetteredMessagesTo": "",
                  "ForwardTo": "",
                  "RequiresSession": false
                },
                "Rules": [
                  {
                    "Name": "app-prop-filter-1",
                    "Properties": {
                      "FilterType": "Correlation",
                      "CorrelationFilter": {
                        "ContentType": "application/text",
                        "CorrelationId": "id1",
                        "Label": "subject1",
                        "MessageId": "msgid1",
                        "ReplyTo": "someQueue",
                        "ReplyToSessionId": "sessionId",
                        "SessionId": "session1",
                        "To": "xyz"
                      }
                    }
                  }
                ]
              },
              {
                "Name": "subscription.2",
                "Properties": {
                  "DeadLetteringOnMessageExpiration": false,
                  "DefaultMessageTimeToLive": "PT1H",
                  "LockDuration": "PT1M",
                  "MaxDeliveryCount": 3,
                  "ForwardDeadLetteredMessagesTo": "",
                  "ForwardTo": "",
                  "RequiresSession": false
                },
                "Rules": [
                  {
                    "Name": "user-prop-filter-1",
                    "Properties": {
                      "FilterType": "Correlation",
                      "CorrelationFilter": {
                        "Properties": { "prop3": "value3" }
                      }
                    }
                  }
                ]
              },
              {
                "Name": "subscription.3",
                "Properties": {
                  "DeadLetteringOnMessageExpiration": false,
                  "DefaultMessageTimeToLive": "PT1H",
                  "LockDuration": "PT1M",
                  "MaxDeliveryCount": 3,
                  "ForwardDeadLetteredMessagesTo": "",
                  "ForwardTo": "",
                  "RequiresSession": false
                },
                "Rules": [
                  {
                    "Name": "sql-filter-1",
                    "Properties": {
                      "FilterType": "Sql",
                      "SqlFilter": { "SqlExpression": "sys.MessageId = '123456' AND userProp1 = 'value1'" },
                      "Action": { "SqlExpression": "SET sys.To = 'Entity'" }
                    }
                  }
                ]
              }
            ]
          }
        ]
      }
    ],
    "Logging": { "Type": "File" }
  }
}`

func TestParseConfigAcceptsMicrosoftsSample(t *testing.T) {
	cfg, err := ParseConfig([]byte(microsoftSample))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	st, err := New(cfg, clock.NewManual(t0))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer st.Close()
	ent, err := st.Resolve("topic.1/Subscriptions/subscription.1")
	if err != nil || ent.LockDuration != time.Minute || ent.MaxDeliveryCount != 3 || ent.Kind != KindSubscription {
		t.Fatalf("Resolve = %+v, %v", ent, err)
	}
	sub2 := msg("m", withProps(map[string]any{"prop3": "value3"}))
	send(t, st, "topic.1", sub2)
	for addr, want := range map[string]int{
		"topic.1/Subscriptions/subscription.1": 0, // correlation filter does not match
		"topic.1/Subscriptions/subscription.2": 1, // application property matches
		"topic.1/Subscriptions/subscription.3": 1, // unsupported SQL matches everything
	} {
		if got := counts(t, st, addr).Active; got != want {
			t.Errorf("%s: %d active, want %d", addr, got, want)
		}
	}
}

func TestParseConfigErrorsNameEntityAndProperty(t *testing.T) {
	queue := func(props string) string {
		return `{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"x","Properties":{` + props + `}}],"Topics":[]}],"Logging":{"Type":"Console"}}}`
	}
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"a lock duration above five minutes names the queue and the value", queue(`"LockDuration":"PT99M"`), []string{`queue "x"`, `LockDuration "PT99M"`}},
		{"a duration that is not ISO-8601 is rejected", queue(`"DefaultMessageTimeToLive":"1h"`), []string{`queue "x"`, `DefaultMessageTimeToLive "1h"`, "ISO-8601"}},
		{"an empty ISO duration is rejected", queue(`"DuplicateDetectionHistoryTimeWindow":"PT"`), []string{`DuplicateDetectionHistoryTimeWindow "PT"`}},
		{"a negative max delivery count is rejected", queue(`"MaxDeliveryCount":-1`), []string{`queue "x"`, "MaxDeliveryCount -1"}},
		{"a forward target that does not exist is rejected", queue(`"ForwardTo":"nowhere"`), []string{`queue "x"`, `ForwardTo "nowhere"`}},
		{"a wrong JSON type is reported", queue(`"RequiresSession":"yes"`), []string{"RequiresSession"}},
		{"trailing garbage is rejected", queue(``) + `{}`, []string{"trailing data"}},
		{"an entity name with spaces is rejected", `{"UserConfig":{"Namespaces":[{"Queues":[{"Name":"bad name"}]}]}}`, []string{`queue "bad name"`, "Name"}},
		{"a queue and a topic with the same name differing in case are rejected", `{"UserConfig":{"Namespaces":[{"Queues":[{"Name":"Orders"}],"Topics":[{"Name":"orders","Subscriptions":[{"Name":"s"}]}]}]}}`, []string{`topic "orders"`, "already used by a queue"}},
		{"a correlation rule without a filter is rejected", `{"UserConfig":{"Namespaces":[{"Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation"}}]}]}]}]}}`, []string{`topic "t" subscription "s" rule 0 ("r")`, "CorrelationFilter"}},
		{"an unknown filter type is rejected", `{"UserConfig":{"Namespaces":[{"Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Regex"}}]}]}]}]}}`, []string{`FilterType "Regex"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatal("ParseConfig accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseISODuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"an hour", "PT1H", time.Hour},
		{"minutes and seconds combine", "PT1M30S", 90 * time.Second},
		{"fractional seconds are allowed", "PT0.5S", 500 * time.Millisecond},
		{"days and weeks", "P1W2D", 9 * 24 * time.Hour},
		{"the service's infinite TTL saturates", "P10675199DT2H48M5.4775807S", time.Duration(1<<63 - 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseISODuration(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("ParseISODuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestMergeKeepsBothAndRejectsClashes(t *testing.T) {
	user, err := ParseConfig([]byte(microsoftSample))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := Merge(PatrolConfig(), user)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	st, err := New(merged, clock.NewManual(t0))
	if err != nil {
		t.Fatalf("New(merged): %v", err)
	}
	defer st.Close()
	for _, addr := range []string{"hr-offboarding", "pat-rotations", "pat-revocations", "pat-events/Subscriptions/all", "queue.1", "topic.1/Subscriptions/subscription.3"} {
		if _, err := st.Resolve(addr); err != nil {
			t.Errorf("Resolve(%q): %v", addr, err)
		}
	}
	rot, _ := st.Resolve("pat-rotations")
	if !rot.RequiresSession || rot.LockDuration != time.Minute || rot.MaxDeliveryCount != 10 {
		t.Errorf("pat-rotations = %+v", rot)
	}
	clash := Config{UserConfig: UserConfig{Namespaces: []Namespace{{Queues: []Queue{{Name: "PAT-ROTATIONS"}}}}}}
	if _, err := Merge(PatrolConfig(), clash); err == nil || !strings.Contains(err.Error(), `"PAT-ROTATIONS"`) {
		t.Fatalf("Merge with a clashing queue = %v", err)
	}
}
