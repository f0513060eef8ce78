package keyvault

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Key Vault secret event types (Event Grid system topic Microsoft.KeyVault.vaults).
const (
	EventSecretNewVersionCreated = "Microsoft.KeyVault.SecretNewVersionCreated"
	EventSecretNearExpiry        = "Microsoft.KeyVault.SecretNearExpiry"
	EventSecretExpired           = "Microsoft.KeyVault.SecretExpired"
)

// NearExpiryLead is how long before exp Key Vault raises SecretNearExpiry.
const NearExpiryLead = 30 * 24 * time.Hour

// Event is one Key Vault event as published to the vault's system topic.
type Event struct {
	ID      string
	Type    string
	Topic   string // /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}
	Subject string // the secret name
	Time    time.Time
	Data    EventData
}

// EventData is the data object of a Key Vault event. Field names are PascalCase with
// upper-case NBF/EXP, and the times are numbers (Unix seconds), null when unset.
type EventData struct {
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	NBF        *int64 `json:"NBF"`
	EXP        *int64 `json:"EXP"`
}

type expiryKind int

const (
	kindNear expiryKind = iota
	kindExpired
)

// expiryDue is when an expiry event of kind is due for a version expiring at exp.
func expiryDue(kind expiryKind, exp int64) time.Time {
	t := time.Unix(exp, 0).UTC()
	if kind == kindNear {
		return t.Add(-NearExpiryLead)
	}
	return t
}

func stopTimers(v *versionState) {
	for _, t := range v.timers {
		t.Stop()
	}
	v.timers = nil
}

// vaultBaseLocked is the vault URL events carry in data.Id.
func (e *Emulator) vaultBaseLocked(vault string) string {
	if e.port == 0 {
		return "https://" + vault + ".vault.localhost"
	}
	return fmt.Sprintf("https://%s.vault.localhost:%d", vault, e.port)
}

func (e *Emulator) newEventLocked(vault, typ string, s *secretState, v *versionState, now time.Time) Event {
	base := e.vaultBaseLocked(vault)
	return Event{
		ID:   uuid.NewString(),
		Type: typ,
		Topic: fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s",
			e.opts.SubscriptionID, e.opts.ResourceGroup, vault),
		Subject: s.name,
		Time:    now.UTC(),
		Data: EventData{
			ID: base + "/secrets/" + s.name + "/" + v.id, VaultName: vault, ObjectType: "Secret",
			ObjectName: s.name, Version: v.id, NBF: v.nbf, EXP: v.exp,
		},
	}
}

// versionCreatedLocked raises SecretNewVersionCreated and arms the expiry events.
func (e *Emulator) versionCreatedLocked(vault string, s *secretState, v *versionState, now time.Time) {
	e.events.publish(vault, e.newEventLocked(vault, EventSecretNewVersionCreated, s, v, now))
	e.scheduleExpiryLocked(vault, s, v, now)
}

// scheduleExpiryLocked (re)arms SecretNearExpiry and SecretExpired for the current
// version v. An event already raised for this version is not raised again; one whose
// time has already come is raised now (a version created with exp less than 30 days
// away is near expiry at once, as in Azure).
func (e *Emulator) scheduleExpiryLocked(vault string, s *secretState, v *versionState, now time.Time) {
	stopTimers(v)
	if v.exp == nil {
		return
	}
	key := strings.ToLower(s.name)
	for _, kind := range []expiryKind{kindNear, kindExpired} {
		if v.fired(kind) {
			continue
		}
		due := expiryDue(kind, *v.exp)
		if !due.After(now) {
			e.fireLocked(vault, s, v, kind, now)
			continue
		}
		id, k := v.id, kind
		v.timers = append(v.timers, e.clk.At(due, func() { e.onExpiryTimer(vault, key, id, k) }))
	}
}

func (v *versionState) fired(kind expiryKind) bool {
	if kind == kindNear {
		return v.nearFired
	}
	return v.expiredFired
}

// onExpiryTimer runs on the clock. It re-checks everything, because the version may
// have been superseded, deleted or given a new exp since the timer was set.
func (e *Emulator) onExpiryTimer(vault, key, versionID string, kind expiryKind) {
	now := e.clk.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	vs := e.vaults[vault]
	if vs == nil {
		return
	}
	s := vs.secrets[key]
	if s == nil || s.deleted() {
		return
	}
	v := s.current()
	if v.id != versionID || v.exp == nil || v.fired(kind) || expiryDue(kind, *v.exp).After(now) {
		return
	}
	e.fireLocked(vault, s, v, kind, now)
}

func (e *Emulator) fireLocked(vault string, s *secretState, v *versionState, kind expiryKind, now time.Time) {
	typ := EventSecretNearExpiry
	if kind == kindNear {
		v.nearFired = true
	} else {
		v.expiredFired = true
		typ = EventSecretExpired
	}
	e.events.publish(vault, e.newEventLocked(vault, typ, s, v, now))
}
