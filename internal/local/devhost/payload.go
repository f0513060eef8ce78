package devhost

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
)

// InvocationRequest is the body the host POSTs to /{FunctionName}
// (protocols.md §1.3). Keys are PascalCase; encoding/json sorts map keys, so the
// encoding is deterministic.
type InvocationRequest struct {
	Data     map[string]any `json:"Data"`
	Metadata map[string]any `json:"Metadata"`
}

// Stamp is what the host makes up per invocation (sys.UtcNow, sys.RandGuid); the
// builders take it as input so payloads are reproducible.
type Stamp struct {
	Now      time.Time // sys.UtcNow
	RandGUID string    // sys.RandGuid
}

// NewStamp returns a stamp for an invocation happening now.
func NewStamp(now time.Time) Stamp { return Stamp{Now: now, RandGUID: uuid.NewString()} }

// sys is the "sys" metadata entry every invocation carries.
func sys(function string, st Stamp) map[string]any {
	return map[string]any{"MethodName": function, "UtcNow": netUTC(st.Now), "RandGuid": st.RandGUID}
}

// Date formats the host produces (Json.NET's ISO format with "FFFFFFF": trailing zeros
// dropped).
const (
	layoutNetUTC      = "2006-01-02T15:04:05.9999999Z07:00" // DateTime (Kind Utc) through Json.NET
	layoutReparsed    = "2006-01-02T15:04:05"               // DateTime re-parsed from ToString(): zone and fraction lost
	layoutReparsedOff = "2006-01-02T15:04:05-07:00"         // DateTimeOffset re-parsed from ToString(): fraction lost
	layoutTimer       = "2006-01-02T15:04:05.0000000-07:00" // TimerInfo.ScheduleStatus dates
)

func netUTC(t time.Time) string { return t.UTC().Format(layoutNetUTC) }

// scalar converts a binding-data value the way GetHttpScriptInvocationContextValue does
// for non-objects: JsonConvert.SerializeObject, so a string arrives JSON-encoded a second
// time and a number arrives as a string of digits.
func scalar(v any) string {
	b, _ := marshalNet(v)
	return string(b)
}

// marshalNet encodes like Json.NET's defaults: no HTML escaping of <, > and &.
func marshalNet(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Encode returns the request body exactly as devhost sends it.
func (r InvocationRequest) Encode() ([]byte, error) { return marshalNet(r) }

// ServiceBusSession is what a session receiver adds to the metadata.
type ServiceBusSession struct {
	LockedUntil time.Time
}

// ServiceBusClientInfo is the "Client" metadata object (a ServiceBusClient through
// JObject.FromObject).
type ServiceBusClientInfo struct {
	FullyQualifiedNamespace string
	Identifier              string
}

// BuildServiceBus builds a serviceBusTrigger invocation (ServiceBusTriggerBindingStrategy
// binding data through the custom-handler conversion): Data.<name> is the body as a
// double-encoded string (base64 for dataType binary), metadata strings double-encoded,
// integers as strings, DateTime values re-parsed, null values omitted.
func BuildServiceBus(fn Function, msg *azservicebus.ReceivedMessage, session *ServiceBusSession, client ServiceBusClientInfo, st Stamp) InvocationRequest {
	b := fn.TriggerBinding()
	var data string
	if b.DataType == "binary" {
		data = base64.StdEncoding.EncodeToString(msg.Body)
	} else {
		data = scalar(string(msg.Body))
	}
	md := map[string]any{
		"MessageReceiver": map[string]any{},
		"MessageActions":  map[string]any{},
		"ReceiveActions":  map[string]any{},
		"Client": map[string]any{
			"FullyQualifiedNamespace": client.FullyQualifiedNamespace,
			"IsClosed":                false,
			"TransportType":           0,
			"Identifier":              client.Identifier,
		},
		"DeliveryCount": scalar(msg.DeliveryCount),
		"LockToken":     scalar(uuid.UUID(msg.LockToken).String()),
		"MessageId":     scalar(msg.MessageID),
		"sys":           sys(fn.Name, st),
	}
	if session != nil {
		// ServiceBusSessionMessageActions' one public property survives JObject.FromObject.
		sa := map[string]any{"SessionLockedUntil": session.LockedUntil.UTC().Format("2006-01-02T15:04:05.9999999-07:00")}
		md["MessageSession"] = sa
		md["SessionActions"] = sa
	}
	strs := []struct {
		key string
		v   *string
	}{
		{"DeadLetterSource", msg.DeadLetterSource}, {"ContentType", msg.ContentType}, {"ReplyTo", msg.ReplyTo},
		{"To", msg.To}, {"Subject", msg.Subject}, {"Label", msg.Subject}, {"CorrelationId", msg.CorrelationID},
		{"SessionId", msg.SessionID}, {"ReplyToSessionId", msg.ReplyToSessionID}, {"PartitionKey", msg.PartitionKey},
	}
	for _, s := range strs {
		if s.v != nil {
			md[s.key] = scalar(*s.v)
		}
	}
	if msg.SequenceNumber != nil {
		md["SequenceNumber"] = scalar(*msg.SequenceNumber)
	}
	if msg.EnqueuedTime != nil {
		md["EnqueuedTimeUtc"] = msg.EnqueuedTime.UTC().Format(layoutReparsed)
		md["EnqueuedTime"] = msg.EnqueuedTime.UTC().Format(layoutReparsedOff)
	}
	// A message without a TTL expires at DateTimeOffset.MaxValue in the .NET SDK.
	expires := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if msg.ExpiresAt != nil {
		expires = *msg.ExpiresAt
	}
	md["ExpiresAtUtc"] = expires.UTC().Format(layoutReparsed)
	md["ExpiresAt"] = expires.UTC().Format(layoutReparsedOff)
	props := map[string]any{}
	for k, v := range msg.ApplicationProperties {
		props[k] = appPropertyValue(v)
	}
	md["ApplicationProperties"] = props
	md["UserProperties"] = props
	return InvocationRequest{Data: map[string]any{b.Name: data}, Metadata: md}
}

// appPropertyValue renders an application property as Json.NET would inside an
// object: times as ISO strings, bytes as base64, the rest as JSON values.
func appPropertyValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return netUTC(x)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Duration:
		return x.String()
	default:
		return v
	}
}

// HTTPTriggerRequest is the HTTP request an HTTP trigger received, as devhost saw it.
type HTTPTriggerRequest struct {
	URL     string // absolute URL, query included
	Method  string
	Header  http.Header
	Body    []byte
	Params  map[string]string // route parameters (absent optional ones omitted)
	KeyKind string            // "function", "admin" or "" (no key presented)
}

// BuildHTTP builds an httpTrigger invocation: Data.<req> is GetRequestAsJObject's
// object (Url, Method, Query, Headers as arrays, Params, Identities, Body), and the
// metadata carries Query, Headers (joined strings), Params and each route parameter
// as top-level binding data.
func BuildHTTP(fn Function, r HTTPTriggerRequest, st Stamp) InvocationRequest {
	b := fn.TriggerBinding()
	query := map[string]string{}
	if u, err := url.Parse(r.URL); err == nil {
		for k, vs := range u.Query() {
			query[k] = strings.Join(vs, ",")
		}
	}
	headers := map[string][]string{}
	flat := map[string]string{}
	for k, vs := range r.Header {
		headers[k] = append([]string(nil), vs...)
		flat[k] = strings.Join(vs, ",")
	}
	params := map[string]string{}
	for k, v := range r.Params {
		params[k] = v
	}
	req := map[string]any{
		"Url":        r.URL,
		"Method":     strings.ToUpper(r.Method),
		"Query":      query,
		"Headers":    headers,
		"Params":     params,
		"Identities": identities(r.KeyKind),
	}
	if len(r.Body) > 0 {
		req["Body"] = httpBody(r.Header.Get("Content-Type"), r.Body)
	}
	md := map[string]any{
		"Query":   query,
		"Headers": flat,
		"Params":  params,
		"sys":     sys(fn.Name, st),
	}
	for k, v := range params {
		if _, taken := md[k]; !taken {
			md[k] = scalar(v)
		}
	}
	return InvocationRequest{Data: map[string]any{b.Name: req}, Metadata: md}
}

// httpBody is the Body property: the raw text for textual content, base64 for
// octet-stream and multipart (the host reads those as byte arrays).
func httpBody(contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/") {
		return base64.StdEncoding.EncodeToString(body)
	}
	return string(body)
}

// identities is the ClaimsIdentity list the host's key authentication produces.
func identities(keyKind string) []any {
	if keyKind == "" {
		return []any{}
	}
	level, keyID := "Function", "default"
	if keyKind == AuthAdmin {
		level, keyID = "Admin", "master"
	}
	claim := func(typ, value string) map[string]any {
		return map[string]any{
			"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": map[string]any{},
			"Type": typ, "Value": value, "ValueType": "http://www.w3.org/2001/XMLSchema#string",
		}
	}
	return []any{map[string]any{
		"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Actor": nil, "BootstrapContext": nil,
		"Claims": []any{
			claim("http://schemas.microsoft.com/2017/07/functions/claims/authlevel", level),
			claim("http://schemas.microsoft.com/2017/07/functions/claims/keyid", keyID),
		},
		"Label": nil, "Name": nil,
		"NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
		"RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
	}}
}

// TimerTick is one timer firing.
type TimerTick struct {
	Last      time.Time // previous run; zero before the first
	Next      time.Time // the occurrence after this one
	IsPastDue bool
}

// BuildTimer builds a timerTrigger invocation: Data.<name> is a TimerInfo object.
func BuildTimer(fn Function, tick TimerTick, st Stamp) InvocationRequest {
	b := fn.TriggerBinding()
	var status any
	if b.UseMonitor {
		status = map[string]any{
			"Last":        timerDate(tick.Last),
			"Next":        timerDate(tick.Next),
			"LastUpdated": timerDate(st.Now),
		}
	}
	timer := map[string]any{
		"Schedule":       map[string]any{"AdjustForDST": true},
		"ScheduleStatus": status,
		"IsPastDue":      tick.IsPastDue,
	}
	return InvocationRequest{Data: map[string]any{b.Name: timer}, Metadata: map[string]any{"sys": sys(fn.Name, st)}}
}

func timerDate(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00"
	}
	return t.UTC().Format(layoutTimer)
}

// BuildEventGrid builds an eventGridTrigger invocation for one event: the event is
// bound as a JSON object with its original casing; its data is also binding data.
func BuildEventGrid(fn Function, event json.RawMessage, st Stamp) (InvocationRequest, error) {
	b := fn.TriggerBinding()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(event, &obj); err != nil || obj == nil {
		return InvocationRequest{}, fmt.Errorf("event grid event is not a JSON object")
	}
	md := map[string]any{"sys": sys(fn.Name, st)}
	if d, ok := obj["data"]; ok && string(d) != "null" {
		md["data"] = json.RawMessage(d)
	}
	return InvocationRequest{Data: map[string]any{b.Name: json.RawMessage(event)}, Metadata: md}, nil
}
