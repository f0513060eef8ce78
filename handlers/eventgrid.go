package handlers

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

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
		return KeyVaultEvent{}, fieldErr(doc, "", "%v", err)
	}
	if b[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(b, &arr); err != nil {
			return KeyVaultEvent{}, fieldErr(doc, "", "%s", jsonProblem(err))
		}
		if len(arr) != 1 {
			return KeyVaultEvent{}, fieldErr(doc, "", "an array of %d events; the trigger delivers one at a time", len(arr))
		}
		if b, err = unwrapValue(arr[0]); err != nil {
			return KeyVaultEvent{}, fieldErr(doc, "[0]", "%v", err)
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return KeyVaultEvent{}, fieldErr(doc, "", "must be a JSON object")
	}
	top = normalizeKeys(top)

	var ev KeyVaultEvent
	// Keys are looked up normalised (lower case) but named in errors as the schema
	// spells them.
	names := map[string]string{"eventtype": "eventType", "eventtime": "eventTime"}
	str := func(key string) (string, error) {
		s, err := plainString(top[key])
		if err != nil {
			return "", fieldErr(doc, firstNonEmpty(names[key], key), "%v", err)
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
			return KeyVaultEvent{}, fieldErr(doc, timeName, "%q is not a date-time", clip(ts))
		}
	}

	switch ev.Type {
	case EventSecretNearExpiry, EventSecretExpired:
	case "":
		return KeyVaultEvent{}, fieldErr(doc, typeName, "missing")
	default:
		return KeyVaultEvent{}, fieldErr(doc, typeName, "%q is not handled; subscribe only to %s and %s", clipTo(ev.Type, 128), EventSecretNearExpiry, EventSecretExpired)
	}
	if err := identifier(doc, "id", ev.ID, true); err != nil {
		return KeyVaultEvent{}, err
	}

	rawData, ok := top["data"]
	if !ok || bytes.Equal(bytes.TrimSpace(rawData), []byte("null")) {
		return KeyVaultEvent{}, fieldErr(doc, "data", "missing")
	}
	db, err := unwrapValue(rawData)
	if err != nil {
		return KeyVaultEvent{}, fieldErr(doc, "data", "%v", err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(db, &data); err != nil || data == nil {
		return KeyVaultEvent{}, fieldErr(doc, "data", "must be a JSON object")
	}
	data = normalizeKeys(data)
	dstr := func(key, name string) (string, error) {
		s, err := plainString(data[key])
		if err != nil {
			return "", fieldErr(doc, "data."+name, "%v", err)
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
		return KeyVaultEvent{}, fieldErr(doc, "data.ObjectType", "%q is not Secret", clip(objectType))
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
		return KeyVaultEvent{}, fieldErr(doc, "data.ObjectName", "missing (and no subject)")
	case !ValidSecretName(ev.Secret):
		return KeyVaultEvent{}, fieldErr(doc, "data.ObjectName", "%q is not a Key Vault secret name", clip(ev.Secret))
	case subject != "" && subject != ev.Secret:
		return KeyVaultEvent{}, fieldErr(doc, "subject", "%q does not match data.ObjectName %q", clip(subject), clip(ev.Secret))
	case idName != "" && !strings.EqualFold(idName, ev.Secret):
		return KeyVaultEvent{}, fieldErr(doc, "data.Id", "names secret %q, not %q", clip(idName), clip(ev.Secret))
	}
	ev.Version = strings.ToLower(ev.Version)
	if ev.Version == "" {
		return KeyVaultEvent{}, fieldErr(doc, "data.Version", "missing")
	}
	if !versionRE.MatchString(ev.Version) {
		return KeyVaultEvent{}, fieldErr(doc, "data.Version", "%q is not a Key Vault version (32 hex digits)", clip(ev.Version))
	}
	if idVersion != "" && !strings.EqualFold(idVersion, ev.Version) {
		return KeyVaultEvent{}, fieldErr(doc, "data.Id", "names version %q, not %q", clip(idVersion), ev.Version)
	}
	if ev.VaultName == "" {
		return KeyVaultEvent{}, fieldErr(doc, "data.VaultName", "missing")
	}
	if !vaultRE.MatchString(ev.VaultName) {
		return KeyVaultEvent{}, fieldErr(doc, "data.VaultName", "%q is not a vault name", clip(ev.VaultName))
	}
	for _, f := range []struct {
		key, name string
		dst       *time.Time
	}{{"nbf", "NBF", &ev.NotBefore}, {"exp", "EXP", &ev.Expires}} {
		t, ok, err := unixish(data[f.key])
		if err != nil {
			return KeyVaultEvent{}, fieldErr(doc, "data."+f.name, "%v", err)
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
