package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// KeyVaultEvents: Key Vault's SecretNearExpiry and SecretExpired events (Event Grid).
var keyVaultEventsFunction = Function{
	Name: "KeyVaultEvents", Trigger: BindingEventGridTrigger, Binding: "event", invoke: invokeKeyVaultEvent,
}

// invokeKeyVaultEvent handles one Key Vault event. Event Grid cannot be told "dead-letter this"
// by a function, so a permanently bad event is acknowledged with a logged reason rather
// than redelivered for a day.
func invokeKeyVaultEvent(ctx context.Context, c call) *response {
	log, fn, inv := c.log, c.fn, c.inv
	raw, ok := inv.binding(fn.Binding)
	if !ok {
		err := contract.Malformed("invocation", "Data."+fn.Binding, "missing")
		log.ErrorContext(ctx, "event ignored", slog.Any("error", err))
		return &response{status: http.StatusOK, Logs: []string{"ignored event: " + err.Error()}}
	}
	ev, err := DecodeKeyVaultEvent(raw)
	if err != nil {
		log.WarnContext(ctx, "event ignored", slog.Any("error", err))
		return &response{status: http.StatusOK, Logs: []string{"ignored event: " + err.Error()}}
	}
	log = log.With(slog.String("eventId", ev.ID), slog.String("secret", ev.Secret), slog.String("version", ev.Version))
	if err := c.deps.App.KeyVaultEvent(ctx, ev); err != nil {
		class := c.h.opts.Classify(err)
		if class == Transient || class == Conflict {
			log.WarnContext(ctx, "event will be redelivered", slog.String("class", class.String()), slog.Any("error", err))
			return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("retry: %v", err)}}
		}
		log.ErrorContext(ctx, "event rejected", slog.String("class", class.String()), slog.Any("error", err))
		return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("rejected event %s: %v", ev.ID, err)}}
	}
	log.InfoContext(ctx, "event handled", slog.String("type", ev.Type))
	return &response{status: http.StatusOK, Logs: []string{fmt.Sprintf("%s: handled %s for %s/%s", fn.Name, ev.Type, ev.Secret, ev.Version)}}
}

// Key Vault event types patrol acts on.
const (
	EventSecretNearExpiry = "Microsoft.KeyVault.SecretNearExpiry"
	EventSecretExpired    = "Microsoft.KeyVault.SecretExpired"
)

// Event schemas an event can arrive in.
const (
	SchemaEventGrid   = "EventGrid"
	SchemaCloudEvents = "CloudEvents"
)

// KeyVaultEvent is a Key Vault secret event as patrol needs it, whichever schema it was
// delivered in.
type KeyVaultEvent struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`             // EventSecretNearExpiry or EventSecretExpired
	Schema    string    `json:"schema"`           // SchemaEventGrid or SchemaCloudEvents
	Source    string    `json:"source,omitempty"` // Event Grid `topic` / CloudEvents `source`: the vault's resource id
	Time      time.Time `json:"time,omitzero"`
	VaultName string    `json:"vaultName"`
	Secret    string    `json:"secret"`             // data.ObjectName (= subject)
	Version   string    `json:"version"`            // 32 lower-case hex digits
	SecretID  string    `json:"secretId,omitempty"` // data.Id: the version's URL
	NotBefore time.Time `json:"notBefore,omitzero"` // data.NBF; zero when not set
	Expires   time.Time `json:"expires,omitzero"`   // data.EXP; zero when not set
}

// DecodeKeyVaultEvent reads the Event Grid trigger value: an Event Grid schema or
// CloudEvents 1.0 event, as an object or as a (possibly doubly) encoded string, or a
// one-element array of either. Its data may itself be an object or a string. Key names
// are matched ignoring case and surrounding spaces.
func DecodeKeyVaultEvent(raw []byte) (KeyVaultEvent, error) {
	const doc = "key vault event"
	b, err := unwrapValue(raw)
	if err != nil {
		return KeyVaultEvent{}, contract.Malformed(doc, "", "%v", err)
	}
	if b[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(b, &arr); err != nil {
			return KeyVaultEvent{}, contract.Malformed(doc, "", "%s", contract.JSONProblem(err))
		}
		if len(arr) != 1 {
			return KeyVaultEvent{}, contract.Malformed(doc, "", "an array of %d events; the trigger delivers one at a time", len(arr))
		}
		if b, err = unwrapValue(arr[0]); err != nil {
			return KeyVaultEvent{}, contract.Malformed(doc, "[0]", "%v", err)
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return KeyVaultEvent{}, contract.Malformed(doc, "", "must be a JSON object")
	}
	top = normalizeKeys(top)

	var ev KeyVaultEvent
	// Keys are looked up normalised (lower case) but named in errors as the schema
	// spells them.
	names := map[string]string{"eventtype": "eventType", "eventtime": "eventTime"}
	str := func(key string) (string, error) {
		s, err := plainString(top[key])
		if err != nil {
			return "", contract.Malformed(doc, firstNonEmpty(names[key], key), "%v", err)
		}
		return s, nil
	}
	typeKey, timeKey, sourceKey := "eventtype", "eventtime", "topic"
	ev.Schema = SchemaEventGrid
	if _, ok := top["specversion"]; ok {
		typeKey, timeKey, sourceKey = "type", "time", "source"
		ev.Schema = SchemaCloudEvents
	}
	typeName, timeName := firstNonEmpty(names[typeKey], typeKey), firstNonEmpty(names[timeKey], timeKey)
	if ev.ID, err = str("id"); err != nil {
		return KeyVaultEvent{}, err
	}
	if ev.Type, err = str(typeKey); err != nil {
		return KeyVaultEvent{}, err
	}
	if ev.Source, err = str(sourceKey); err != nil {
		return KeyVaultEvent{}, err
	}
	subject, err := str("subject")
	if err != nil {
		return KeyVaultEvent{}, err
	}
	if ts, err := str(timeKey); err != nil {
		return KeyVaultEvent{}, err
	} else if ts != "" {
		if ev.Time, err = parseFlexibleTime(ts); err != nil {
			return KeyVaultEvent{}, contract.Malformed(doc, timeName, "%q is not a date-time", contract.Clip(ts))
		}
	}

	switch ev.Type {
	case EventSecretNearExpiry, EventSecretExpired:
	case "":
		return KeyVaultEvent{}, contract.Malformed(doc, typeName, "missing")
	default:
		return KeyVaultEvent{}, contract.Malformed(doc, typeName, "%q is not handled; subscribe only to %s and %s", contract.ClipTo(ev.Type, 128), EventSecretNearExpiry, EventSecretExpired)
	}
	if err := contract.CheckIdentifier(doc, "id", ev.ID, true); err != nil {
		return KeyVaultEvent{}, err
	}

	rawData, ok := top["data"]
	if !ok || bytes.Equal(bytes.TrimSpace(rawData), []byte("null")) {
		return KeyVaultEvent{}, contract.Malformed(doc, "data", "missing")
	}
	db, err := unwrapValue(rawData)
	if err != nil {
		return KeyVaultEvent{}, contract.Malformed(doc, "data", "%v", err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(db, &data); err != nil || data == nil {
		return KeyVaultEvent{}, contract.Malformed(doc, "data", "must be a JSON object")
	}
	data = normalizeKeys(data)
	dstr := func(key, name string) (string, error) {
		s, err := plainString(data[key])
		if err != nil {
			return "", contract.Malformed(doc, "data."+name, "%v", err)
		}
		return s, nil
	}
	if ev.SecretID, err = dstr("id", "Id"); err != nil {
		return KeyVaultEvent{}, err
	}
	if ev.VaultName, err = dstr("vaultname", "VaultName"); err != nil {
		return KeyVaultEvent{}, err
	}
	objectType, err := dstr("objecttype", "ObjectType")
	if err != nil {
		return KeyVaultEvent{}, err
	}
	if ev.Secret, err = dstr("objectname", "ObjectName"); err != nil {
		return KeyVaultEvent{}, err
	}
	if ev.Version, err = dstr("version", "Version"); err != nil {
		return KeyVaultEvent{}, err
	}
	if objectType != "" && !strings.EqualFold(objectType, "Secret") {
		return KeyVaultEvent{}, contract.Malformed(doc, "data.ObjectType", "%q is not Secret", contract.Clip(objectType))
	}

	// Fill gaps from the redundant fields rather than reject: subject = object name, the
	// version URL holds vault, name and version, the topic names the vault.
	idVault, idName, idVersion := splitSecretID(ev.SecretID)
	if ev.Secret == "" {
		ev.Secret = firstNonEmpty(subject, idName)
	}
	if ev.VaultName == "" {
		ev.VaultName = firstNonEmpty(idVault, vaultFromResourceID(ev.Source))
	}
	if ev.Version == "" {
		ev.Version = idVersion
	}
	switch {
	case ev.Secret == "":
		return KeyVaultEvent{}, contract.Malformed(doc, "data.ObjectName", "missing (and no subject)")
	case !contract.ValidSecretName(ev.Secret):
		return KeyVaultEvent{}, contract.Malformed(doc, "data.ObjectName", "%q is not a Key Vault secret name", contract.Clip(ev.Secret))
	case subject != "" && subject != ev.Secret:
		return KeyVaultEvent{}, contract.Malformed(doc, "subject", "%q does not match data.ObjectName %q", contract.Clip(subject), contract.Clip(ev.Secret))
	case idName != "" && !strings.EqualFold(idName, ev.Secret):
		return KeyVaultEvent{}, contract.Malformed(doc, "data.Id", "names secret %q, not %q", contract.Clip(idName), contract.Clip(ev.Secret))
	}
	ev.Version = strings.ToLower(ev.Version)
	if ev.Version == "" {
		return KeyVaultEvent{}, contract.Malformed(doc, "data.Version", "missing")
	}
	if !contract.ValidVersion(ev.Version) {
		return KeyVaultEvent{}, contract.Malformed(doc, "data.Version", "%q is not a Key Vault version (32 hex digits)", contract.Clip(ev.Version))
	}
	if idVersion != "" && !strings.EqualFold(idVersion, ev.Version) {
		return KeyVaultEvent{}, contract.Malformed(doc, "data.Id", "names version %q, not %q", contract.Clip(idVersion), ev.Version)
	}
	if ev.VaultName == "" {
		return KeyVaultEvent{}, contract.Malformed(doc, "data.VaultName", "missing")
	}
	if !validVaultName(ev.VaultName) {
		return KeyVaultEvent{}, contract.Malformed(doc, "data.VaultName", "%q is not a vault name", contract.Clip(ev.VaultName))
	}
	for _, f := range []struct {
		key, name string
		dst       *time.Time
	}{{"nbf", "NBF", &ev.NotBefore}, {"exp", "EXP", &ev.Expires}} {
		t, ok, err := unixish(data[f.key])
		if err != nil {
			return KeyVaultEvent{}, contract.Malformed(doc, "data."+f.name, "%v", err)
		}
		if ok {
			*f.dst = t
		}
	}
	return ev, nil
}

// splitSecretID reads https://{vault}.vault.azure.net/secrets/{name}/{version}. Any
// part it cannot find is "".
func splitSecretID(id string) (vault, name, version string) {
	u, err := url.Parse(strings.TrimSpace(id))
	if err != nil || u.Host == "" {
		return "", "", ""
	}
	vault, _, _ = strings.Cut(u.Hostname(), ".")
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) >= 2 && strings.EqualFold(parts[0], "secrets") {
		name = parts[1]
	}
	if len(parts) >= 3 {
		version = strings.TrimSpace(parts[2])
	}
	return vault, name, version
}

// vaultFromResourceID reads …/providers/Microsoft.KeyVault/vaults/{vault}.
func vaultFromResourceID(id string) string {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "vaults") {
			return parts[i+1]
		}
	}
	return ""
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// validVaultName: Key Vault names are 3-24 in Azure; the local stack's vault names are
// the same shape, so this only rejects what cannot be a DNS label (1-63 letters, digits
// and dashes, starting with a letter or digit). Hand-written: a bounded-repetition
// regexp costs start-up time.
func validVaultName(s string) bool {
	if len(s) < 1 || len(s) > 63 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}
