package contract

import (
	"strings"
	"time"
)

// Person identifies someone in Entra ID. At least one field is set; both is better
// (the UPN can be renamed, the object id cannot).
type Person struct {
	UPN      string `json:"upn,omitempty"`
	ObjectID string `json:"objectId,omitempty"`
}

// OffboardingMessage is what HR publishes on the `hr-offboarding` queue when a person
// leaves. Its JSON Schema is internal/contract/schema/offboarding.schema.json;
// docs/offboarding.md explains it.
type OffboardingMessage struct {
	SchemaVersion string    `json:"schemaVersion"`
	EventID       string    `json:"eventId"` // HR's id for the event; repeated deliveries carry the same one
	Person        Person    `json:"person"`
	EffectiveAt   time.Time `json:"effectiveAt,omitzero"` // when the account is disabled; zero = now
	Reason        string    `json:"reason,omitempty"`
}

func checkPerson(doc, field string, p *Person) error {
	p.UPN = strings.TrimSpace(p.UPN)
	p.ObjectID = strings.TrimSpace(p.ObjectID)
	if p.UPN == "" && p.ObjectID == "" {
		return Malformed(doc, field, "needs upn or objectId (or both)")
	}
	if p.UPN != "" {
		if err := checkUPN(doc, field+".upn", p.UPN); err != nil {
			return err
		}
	}
	if p.ObjectID != "" {
		id, err := canonicalGUID(doc, field+".objectId", p.ObjectID)
		if err != nil {
			return err
		}
		p.ObjectID = id
	}
	return nil
}

// DecodeOffboardingMessage parses and validates an HR offboarding message (the message
// body, already unwrapped from the host's encoding).
func DecodeOffboardingMessage(body []byte) (OffboardingMessage, error) {
	const doc = "offboarding message"
	var w struct {
		SchemaVersion string  `json:"schemaVersion"`
		EventID       string  `json:"eventId"`
		Person        *Person `json:"person"`
		EffectiveAt   string  `json:"effectiveAt"`
		Reason        string  `json:"reason"`
	}
	if err := DecodeObject(doc, body, &w); err != nil {
		return OffboardingMessage{}, err
	}
	m := OffboardingMessage{SchemaVersion: w.SchemaVersion, EventID: strings.TrimSpace(w.EventID), Reason: strings.TrimSpace(w.Reason)}
	if err := checkSchemaVersion(doc, m.SchemaVersion, false); err != nil {
		return OffboardingMessage{}, err
	}
	if err := CheckIdentifier(doc, "eventId", m.EventID, true); err != nil {
		return OffboardingMessage{}, err
	}
	if w.Person == nil {
		return OffboardingMessage{}, Malformed(doc, "person", "missing")
	}
	m.Person = *w.Person
	if err := checkPerson(doc, "person", &m.Person); err != nil {
		return OffboardingMessage{}, err
	}
	var err error
	if m.EffectiveAt, err = optionalTime(doc, "effectiveAt", strings.TrimSpace(w.EffectiveAt)); err != nil {
		return OffboardingMessage{}, err
	}
	if len([]rune(m.Reason)) > 256 {
		return OffboardingMessage{}, Malformed(doc, "reason", "longer than 256 characters")
	}
	return m, nil
}
