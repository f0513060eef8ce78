package devops

// PATFormat is which documented format of Azure DevOps PAT a string has.
type PATFormat string

// PAT formats (docs/emulator-fidelity.md 6.1, 6.2).
const (
	// PATCurrent: "PATs are 84 characters long, including 52 randomized characters.
	// Azure DevOps PATs contain the fixed AZDO signature at positions 76 through 80"
	// (Use personal access tokens, "PAT format"); Microsoft Purview's sensitive
	// information type: "a-z or A-Z … or 0-9 with a fixed signature AZDO". Read as 84
	// ASCII letters and digits with "AZDO" at 0-based offsets 76–79.
	PATCurrent PATFormat = "current"
	// PATLegacy: 52 characters of base32 (a 256-bit key), shown lower-case, [a-z2-7]
	// (Purview's older SIT, "Base32 encoded 256-bits symmetric key").
	PATLegacy PATFormat = "legacy"
)

// Shape reports which documented PAT format s has exactly, or "" when it has none. It
// trims nothing and guesses nothing: a value of any other shape — a database password,
// a PAT with a trailing newline — is not a PAT to patrol, so `patrol discover` never
// sends it anywhere.
func Shape(s string) PATFormat {
	switch len(s) {
	case 84:
		if s[76:80] != "AZDO" {
			return ""
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				return ""
			}
		}
		return PATCurrent
	case 52:
		for i := 0; i < len(s); i++ {
			if c := s[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
				return ""
			}
		}
		return PATLegacy
	}
	return ""
}
