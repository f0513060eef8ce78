package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
)

// ReadEnvFile reads a dotenv file for `--env-file`. Errors name the file and line but
// never a value: dotenv files hold connection strings and keys.
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: env file: %w", err)
	}
	m, err := ParseEnv(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("config: env file %s: %w", path, err)
	}
	return m, nil
}

var envKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`) }) // first use: off the handler's start-up

// maxEnvLine bounds one line so a wrong file (a binary, a log) fails fast.
const maxEnvLine = 64 << 10

// ParseEnv reads dotenv syntax:
//
//	# comment
//	KEY=value            # trailing comment after whitespace
//	export KEY=value
//	KEY="line\nwith escapes \" \\"   (double quotes: \n \r \t \" \\ escapes)
//	KEY='literal, no escapes'
//
// Values are single-line. A later line for the same key wins, as in a shell.
func ParseEnv(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEnvLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimSpace(rest)
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=VALUE", n)
		}
		key = strings.TrimSpace(key)
		if !envKey().MatchString(key) {
			// The name is not echoed: a malformed line may be a pasted value.
			return nil, fmt.Errorf("line %d: invalid setting name (want a letter or '_' then letters, digits, '_' or '.')", n)
		}
		v, err := envValue(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("line %d: value of %s: %w", n, key, err)
		}
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func envValue(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	switch raw[0] {
	case '\'':
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", fmt.Errorf("unterminated single quote")
		}
		if err := onlyComment(raw[end+2:]); err != nil {
			return "", err
		}
		return raw[1 : end+1], nil
	case '"':
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			switch c {
			case '"':
				if err := onlyComment(raw[i+1:]); err != nil {
					return "", err
				}
				return b.String(), nil
			case '\\':
				if i+1 >= len(raw) {
					return "", fmt.Errorf("unterminated double quote")
				}
				i++
				switch raw[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\', '$', '`':
					b.WriteByte(raw[i])
				default:
					// Unknown escapes stay as written, like POSIX shells do.
					b.WriteByte('\\')
					b.WriteByte(raw[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("unterminated double quote")
	}
	// Unquoted: a '#' after whitespace starts a comment; '#' inside a word (as in a
	// URL fragment or a key) is kept.
	for i := 1; i < len(raw); i++ {
		if raw[i] == '#' && (raw[i-1] == ' ' || raw[i-1] == '\t') {
			return strings.TrimSpace(raw[:i]), nil
		}
	}
	return raw, nil
}

func onlyComment(rest string) error {
	rest = strings.TrimSpace(rest)
	if rest == "" || strings.HasPrefix(rest, "#") {
		return nil
	}
	return fmt.Errorf("unexpected text after the closing quote")
}

// WithEnvFile layers a dotenv file over getenv. The file wins: naming a file with
// --env-file is a deliberate choice that should not be silently overridden by a stale
// variable in the shell (e.g. a real vault URL while the file points at the emulator).
func WithEnvFile(file map[string]string, getenv func(string) string) func(string) string {
	return func(name string) string {
		if v, ok := file[name]; ok {
			return v
		}
		return getenv(name)
	}
}
