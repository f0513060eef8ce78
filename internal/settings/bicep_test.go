package settings

import (
	"regexp"
	"strings"
	"testing"
)

// A deliberately small reader for the Bicep this repository writes: enough to find a
// resource's body by its type, an object's top-level keys and a property's value. The
// Bicep compiler is .NET and does not run here; CI compiles the files for real
// (.github/workflows/ci.yml), this only reads names out of them.

// bicepResource is one `resource sym 'Type@version' = ... { body }` declaration.
type bicepResource struct {
	file   string
	symbol string
	typ    string // without the @version
	body   string // text between the outer braces
}

var resourceDecl = regexp.MustCompile(`(?m)^\s*resource\s+(\w+)\s+'([^'@]+)@[^']*'(?:\s+existing)?\s*=`)

// bicepResources lists every resource declared in src.
func bicepResources(file, src string) []bicepResource {
	var out []bicepResource
	for _, m := range resourceDecl.FindAllStringSubmatchIndex(src, -1) {
		body, ok := bicepBlock(src, m[1])
		if !ok {
			continue
		}
		out = append(out, bicepResource{file: file, symbol: src[m[2]:m[3]], typ: src[m[4]:m[5]], body: body})
	}
	return out
}

// bicepBlock returns the text inside the first {...} (or [...]) that starts at or after
// from, skipping strings and comments. ok is false when there is none or it never closes.
func bicepBlock(src string, from int) (string, bool) {
	open := -1
	var want byte
	for i := from; i < len(src); i++ {
		switch src[i] {
		case '{':
			open, want = i, '}'
		case '[':
			open, want = i, ']'
		case '\'':
			i = skipString(src, i)
			continue
		case '/':
			if j, ok := skipComment(src, i); ok {
				i = j
				continue
			}
		default:
			continue
		}
		break
	}
	if open < 0 {
		return "", false
	}
	depth := 0
	for i := open; i < len(src); i++ {
		switch c := src[i]; c {
		case '\'':
			i = skipString(src, i)
		case '/':
			if j, ok := skipComment(src, i); ok {
				i = j
			}
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			depth--
			if depth == 0 {
				if c != want {
					return "", false
				}
				return src[open+1 : i], true
			}
		}
	}
	return "", false
}

// skipString returns the index of the closing quote of the string opening at i
// ('...' with \' escapes, or ”'...”' multi-line), or len(src)-1 if it never closes.
func skipString(src string, i int) int {
	if strings.HasPrefix(src[i:], "'''") {
		if end := strings.Index(src[i+3:], "'''"); end >= 0 {
			return i + 3 + end + 2
		}
		return len(src) - 1
	}
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case '\'':
			return j
		}
	}
	return len(src) - 1
}

// skipComment reports whether a comment starts at i and returns the index of its last
// character.
func skipComment(src string, i int) (int, bool) {
	switch {
	case strings.HasPrefix(src[i:], "//"):
		if end := strings.IndexByte(src[i:], '\n'); end >= 0 {
			return i + end, true
		}
		return len(src) - 1, true
	case strings.HasPrefix(src[i:], "/*"):
		if end := strings.Index(src[i+2:], "*/"); end >= 0 {
			return i + 2 + end + 1, true
		}
		return len(src) - 1, true
	}
	return i, false
}

var objectKey = regexp.MustCompile(`^\s*(?:'([^']+)'|([A-Za-z_][A-Za-z0-9_-]*))\s*:\s*(.*)$`)

// bicepProps returns the top-level `key: value` pairs of an object body, in order.
// A value that opens a nested object or array is returned as that block's body.
func bicepProps(body string) []bicepProp {
	var props []bicepProp
	for lineStart := 0; lineStart < len(body); {
		lineEnd := len(body)
		if n := strings.IndexByte(body[lineStart:], '\n'); n >= 0 {
			lineEnd = lineStart + n
		}
		line := body[lineStart:lineEnd]
		if m := objectKey.FindStringSubmatch(line); m != nil {
			if depth, inText := stateAt(body, lineStart); depth == 0 && !inText {
				key := m[1] + m[2]
				val := strings.TrimSpace(stripLineComment(m[3]))
				if strings.HasPrefix(val, "{") || strings.HasPrefix(val, "[") {
					if inner, ok := bicepBlock(body, lineStart+strings.Index(line, val)); ok {
						val = inner
					}
				}
				props = append(props, bicepProp{key: key, value: val})
			}
		}
		lineStart = lineEnd + 1
	}
	return props
}

type bicepProp struct{ key, value string }

// stateAt is the nesting depth at pos, and whether pos lies inside a string or comment.
func stateAt(body string, pos int) (depth int, inText bool) {
	for i := 0; i < pos; i++ {
		switch body[i] {
		case '\'':
			if i = skipString(body, i); i >= pos {
				return depth, true
			}
		case '/':
			if j, ok := skipComment(body, i); ok {
				if i = j; i >= pos {
					return depth, true
				}
			}
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			depth--
		}
	}
	return depth, false
}

func stripLineComment(s string) string {
	inString := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			inString = !inString
		case !inString && strings.HasPrefix(s[i:], "//"):
			return s[:i]
		}
	}
	return s
}

// prop returns the value of key among props.
func prop(props []bicepProp, key string) (string, bool) {
	for _, p := range props {
		if p.key == key {
			return p.value, true
		}
	}
	return "", false
}

// unquote turns a Bicep string literal into its value; ok is false for expressions.
func unquote(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' || strings.Contains(v[1:len(v)-1], "${") {
		return "", false
	}
	return strings.ReplaceAll(v[1:len(v)-1], `\'`, `'`), true
}

func TestBicepReaderFindsResourcesKeysAndValues(t *testing.T) {
	src := `
// a comment with { braces } and 'quotes'
resource q 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: ns
  name: 'pat-rotations' // trailing comment }
  properties: {
    requiresSession: true
    description: 'has } and { inside'
    nested: {
      name: 'not-top-level'
    }
  }
}
resource cond 'Microsoft.Web/sites/config@2024-04-01' = if (flag) {
  name: 'appsettings'
  properties: {
    'QUOTED_KEY': 'x'
    PLAIN_KEY: flag ? 'true' : 'false'
    ARRAY: [
      'a'
      'b'
    ]
  }
}
`
	res := bicepResources("x.bicep", src)
	if len(res) != 2 {
		t.Fatalf("found %d resources, want 2", len(res))
	}
	q := bicepProps(res[0].body)
	if name, _ := prop(q, "name"); name != "'pat-rotations'" {
		t.Errorf("queue name = %q", name)
	}
	props, _ := prop(q, "properties")
	inner := bicepProps(props)
	if v, _ := prop(inner, "requiresSession"); v != "true" {
		t.Errorf("requiresSession = %q, want true", v)
	}
	if _, ok := prop(inner, "name"); ok {
		t.Errorf("a nested key was reported as top-level")
	}
	settings, _ := prop(bicepProps(res[1].body), "properties")
	var keys []string
	for _, p := range bicepProps(settings) {
		keys = append(keys, p.key)
	}
	if got := strings.Join(keys, ","); got != "QUOTED_KEY,PLAIN_KEY,ARRAY" {
		t.Errorf("keys = %s, want QUOTED_KEY,PLAIN_KEY,ARRAY", got)
	}
	arr, _ := prop(bicepProps(settings), "ARRAY")
	if !strings.Contains(arr, "'a'") || strings.Contains(arr, "[") {
		t.Errorf("array body = %q", arr)
	}
	if v, ok := unquote(`'it\'s'`); !ok || v != "it's" {
		t.Errorf("unquote = %q %v", v, ok)
	}
	if _, ok := unquote(`'${x}'`); ok {
		t.Errorf("an interpolated string was taken for a literal")
	}
}

// FuzzBicepReader: the reader must never panic or loop on any text (the Bicep files
// are edited by hand and may be mid-edit when the test runs).
func FuzzBicepReader(f *testing.F) {
	f.Add("resource a 'T@1' = {\n  name: 'x'\n}\n")
	f.Add("resource a 'T@1' = {\n  p: '''multi\n}''' \n  q: { r: [ 1 ] }\n}")
	f.Add("resource a 'T@1' = { /* unterminated")
	f.Add("resource a 'T@1' = { 'k': 'v\\'' }")
	f.Add("}}}{{{[[(')'")
	f.Fuzz(func(t *testing.T, src string) {
		for _, r := range bicepResources("fuzz.bicep", src) {
			for _, p := range bicepProps(r.body) {
				bicepProps(p.value)
				unquote(p.value)
			}
		}
	})
}
