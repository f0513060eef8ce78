package devops

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"

	"github.com/patrol-dev/patrol/internal/secret"
)

// Azure DevOps error bodies and X-TFS-ServiceError headers are free text, and a server
// (or a proxy in front of it) may echo the request's credential back. Every error this
// client returns passes through scrub at this edge, before it can reach a log, an
// outcome on pat-events or an HTTP body: first the exact values the client sent (the
// bearer token, the PAT and its Basic form base64(":"+PAT)), then shapes that look like
// a credential whatever their origin.
var tokenShapes = []struct {
	re   *regexp.Regexp
	with string
}{
	// An Authorization header value quoted back: "Bearer eyJ…", "Basic OnBhdA==".
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*`), "$1 " + secret.Redacted},
	// A JWT anywhere (Entra access tokens): three base64url parts, the first a JSON header.
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`), secret.Redacted},
	// Azure DevOps PATs: the classic 52 characters of lower-case base32, and the 84
	// alphanumeric characters of the current format.
	{regexp.MustCompile(`\b[a-z2-7]{52}\b`), secret.Redacted},
	{regexp.MustCompile(`\b[A-Za-z0-9]{84}\b`), secret.Redacted},
}

// minKnown is the shortest known value scrubbed literally: real tokens are far longer,
// and replacing a one-letter test token would shred every message.
const minKnown = 8

// scrubText removes every known token value and every credential-shaped string from s.
func scrubText(s string, known ...string) string {
	for _, k := range known {
		if len(k) >= minKnown {
			s = strings.ReplaceAll(s, k, secret.Redacted)
		}
	}
	for _, t := range tokenShapes {
		s = t.re.ReplaceAllString(s, t.with)
	}
	return s
}

// credentialForms are the strings a PAT travels as: itself and its Basic
// authorization value, padded and unpadded.
func credentialForms(pat string) []string {
	if pat == "" {
		return nil
	}
	b := []byte(":" + pat)
	return []string{pat, base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b)}
}

// scrub returns err with every known token value and credential shape removed from its
// text. An *Error keeps its type (so errors.Is/As and Permanent/RetryAfter still work);
// its transport error, if its text carried a credential, is replaced by the scrubbed
// text. Any other error whose text carried one is wrapped so that its text is scrubbed
// and errors.Is/As still see the chain.
func scrub(err error, known ...string) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		c := *e
		c.Message = scrubText(c.Message, known...)
		c.TypeKey = scrubText(c.TypeKey, known...)
		if c.Err != nil {
			if t := c.Err.Error(); scrubText(t, known...) != t {
				c.Err = errors.New(scrubText(t, known...))
			}
		}
		return &c
	}
	if t := err.Error(); scrubText(t, known...) != t {
		return &scrubbedError{msg: scrubText(t, known...), err: err}
	}
	return err
}

// scrubbedError is an error whose text had a credential removed.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
