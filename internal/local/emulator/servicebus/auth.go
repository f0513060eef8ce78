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
	"time"
)

// Errors of SAS validation. They never contain the token or the key.
var (
	errTokenMalformed = errors.New("malformed SharedAccessSignature")
	errTokenKey       = errors.New("unknown SharedAccessKeyName")
	errTokenSignature = errors.New("signature does not match")
	errTokenExpired   = errors.New("token expired")
)

// grant is what a validated token allows: every entity under Path (lower-case, no
// scheme or host; "" = the whole namespace) until Expires.
type grant struct {
	Path    string
	Expires time.Time
	// KeyName signed the token: its Rights say what the grant allows on Path.
	KeyName string
}

// validateSAS checks a "SharedAccessSignature sr=…&sig=…&se=…&skn=…" token against keys
// (key name → key). The signature covers sr exactly as it appears in the token: the Go
// SDK lower-cases the escaped audience and the JS SDK does not, so it must not be
// normalised before the check (reference §1.3). now is wall time: the SDK computes se
// from wall time, and tests that move the emulator clock days ahead must still connect.
func validateSAS(token string, keys map[string]string, now time.Time) (grant, error) {
	rest, ok := strings.CutPrefix(token, "SharedAccessSignature ")
	if !ok {
		return grant{}, errTokenMalformed
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	sr, sigEsc, se, sknEsc := fields["sr"], fields["sig"], fields["se"], fields["skn"]
	if sr == "" || sigEsc == "" || se == "" || sknEsc == "" {
		return grant{}, errTokenMalformed
	}
	skn, err := url.QueryUnescape(sknEsc)
	if err != nil {
		return grant{}, errTokenMalformed
	}
	key, ok := keys[skn]
	if !ok {
		return grant{}, errTokenKey
	}
	sig, err := url.QueryUnescape(sigEsc)
	if err != nil {
		return grant{}, errTokenMalformed
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return grant{}, errTokenMalformed
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return grant{}, errTokenSignature
	}
	secs, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return grant{}, errTokenMalformed
	}
	exp := time.Unix(secs, 0)
	if !exp.After(now) {
		return grant{}, errTokenExpired
	}
	aud, err := url.QueryUnescape(sr)
	if err != nil {
		return grant{}, errTokenMalformed
	}
	return grant{Path: audiencePath(aud), Expires: exp, KeyName: skn}, nil
}

// audiencePath reduces "amqp://host:port/Orders/" or "sb://host/orders" to "orders".
func audiencePath(aud string) string {
	p := strings.ToLower(aud)
	if i := strings.Index(p, "://"); i >= 0 {
		p = p[i+3:]
		if j := strings.IndexByte(p, '/'); j >= 0 {
			p = p[j:]
		} else {
			p = ""
		}
	}
	return strings.Trim(p, "/")
}

// covers reports whether a grant for path g allows the entity address addr: the same
// path or one below it, at a segment boundary.
func covers(g, addr string) bool {
	a := audiencePath(addr)
	return g == "" || a == g || strings.HasPrefix(a, g+"/")
}

// parsePlain splits a SASL PLAIN initial response "authzid\0authcid\0passwd".
func parsePlain(resp []byte) (user, pass string, err error) {
	parts := strings.Split(string(resp), "\x00")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("PLAIN response has %d fields, want 3", len(parts))
	}
	return parts[1], parts[2], nil
}
