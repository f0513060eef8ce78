package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// unwrapValue turns a Data value the way the host may have encoded it into the JSON
// document it stands for. Objects arrive as objects, but strings (the default binding
// type of Service Bus triggers) are JSON-serialized once more before the envelope is, so
// a message body {"a":1} arrives on the wire as "\"{\\\"a\\\":1}\"" (a JSON string
// holding a JSON string); other paths and hand-made fixtures send it single-encoded
// ("{\"a\":1}"), and byte[] values arrive as base64. Order: object/array as is; a string
// is unquoted up to three times; what remains is used if it is JSON, otherwise tried as
// base64 of JSON.
func unwrapValue(raw []byte) ([]byte, error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return nil, errors.New("value is empty")
	}
	for range 3 {
		if v[0] != '"' {
			break
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("value is not valid JSON: %s", contract.JSONProblem(err))
		}
		v = bytes.TrimSpace([]byte(s))
		if len(v) == 0 {
			return nil, errors.New("value is an empty string")
		}
	}
	if v[0] == '"' {
		// Four levels of quoting is not a host quirk any more.
		return nil, errors.New("value is a string, not a JSON document")
	}
	if json.Valid(v) {
		return v, nil
	}
	if b, err := base64.StdEncoding.DecodeString(string(v)); err == nil {
		b = bytes.TrimSpace(b)
		if json.Valid(b) {
			return b, nil
		}
	}
	return nil, errors.New("value is neither JSON nor base64-encoded JSON")
}

// metaString reads a metadata value that should be a string: the host sends strings
// JSON-encoded a second time ("\"abc\""), numbers as strings ("1"), and sometimes plain.
// Absent and null read as "".
func metaString(raw json.RawMessage) (string, error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return "", nil
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", errors.New("not a JSON string")
		}
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			var inner string
			if json.Unmarshal([]byte(s), &inner) == nil {
				return inner, nil
			}
		}
		return s, nil
	case '{', '[':
		return "", errors.New("an object or array where a string was expected")
	default:
		// A bare number or bool: keep its text.
		return string(v), nil
	}
}

// metaInt reads an integer that the host may send as a number or as a string, quoted
// once or twice.
func metaInt(raw json.RawMessage) (int64, bool, error) {
	s, err := metaString(raw)
	if err != nil || s == "" {
		return 0, false, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, false, errors.New("not an integer")
	}
	return n, true, nil
}

// timeLayouts are the shapes the host produces for dates: .NET round-trip ("o") with
// seven fractional digits, with and without zone, and DateTime.ToString() in the
// invariant culture, which loses the zone (UTC is meant).
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.9999999",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"01/02/2006 15:04:05 -07:00",
	"01/02/2006 15:04:05",
	"1/2/2006 3:04:05 PM -07:00",
	"1/2/2006 3:04:05 PM",
}

// parseFlexibleTime parses any of timeLayouts; a time without zone is UTC. The result is
// always in UTC.
func parseFlexibleTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a recognised date-time")
}

// metaTime reads an optional date-time metadata value.
func metaTime(raw json.RawMessage) (time.Time, error) {
	s, err := metaString(raw)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	return parseFlexibleTime(s)
}

// unixish reads Key Vault's NBF/EXP: Unix seconds as a number (integer or float, the
// .NET model type is float?), as a string holding a number, as an RFC 3339 string, or
// null/absent. ok is false when the value is absent or null.
func unixish(raw json.RawMessage) (t time.Time, ok bool, err error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return time.Time{}, false, nil
	}
	s := string(v)
	if v[0] == '"' {
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, false, errors.New("not a JSON string")
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return time.Time{}, false, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		// Bounds keep time.Unix from overflowing on fuzzed input: years 1970..9999.
		if f < 0 || f > 253402300799 || f != f {
			return time.Time{}, false, errors.New("unix seconds out of range")
		}
		return time.Unix(int64(f), 0).UTC(), true, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true, nil
	}
	return time.Time{}, false, errors.New("neither Unix seconds nor an RFC 3339 date-time")
}

// normalizeKeys returns obj with keys trimmed and lower-cased, so `"ObjectName "` (a
// typo in Microsoft's own sample) and casing differences between the Event Grid and
// CloudEvents shapes read the same. On a clash the first key wins.
func normalizeKeys(obj map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		nk := strings.ToLower(strings.TrimSpace(k))
		if _, dup := out[nk]; !dup {
			out[nk] = v
		}
	}
	return out
}

// plainString reads a JSON string field (single encoding, as in documents we parse
// ourselves); absent or null read as "".
func plainString(raw json.RawMessage) (string, error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errors.New("not a string")
	}
	return strings.TrimSpace(s), nil
}
