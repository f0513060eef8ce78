package secret

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// token looks like an Azure DevOps PAT (52 base32 characters), so a leak would look
// like one in the failure output too.
const token = "3vqxlbzs2k4n7hq5jw6pxyr2mtd4fe7ac5ulo3gbk6ysiwnqz2aq"

// hidden is an unexported name for Value, to embed it unexported.
type hidden = Value

// holders are the ways a struct can hold a Value: embedded or as a field, exported or
// not. fmt reaches unexported fields by reflection, without calling their methods.
func holders(v Value) map[string]any {
	return map[string]any{
		"an exported field":    struct{ Token Value }{v},
		"an unexported field":  struct{ token Value }{v},
		"embedded, exported":   struct{ Value }{v},
		"embedded, unexported": struct{ hidden }{v},
		"a nested unexported field": struct {
			pat struct{ token Value }
		}{pat: struct{ token Value }{v}},
		"a slice":   []Value{v},
		"a map key": map[Value]int{v: 1},
	}
}

func TestAValueNeverPrintsItsToken(t *testing.T) {
	v := New(token)
	leaks := []string{token, hex.EncodeToString([]byte(token)), strings.ToUpper(hex.EncodeToString([]byte(token)))}
	cases := map[string]any{"the value itself": v, "a pointer to it": &v}
	for how, h := range holders(v) {
		cases[how] = h
	}
	for how, x := range cases {
		t.Run(how, func(t *testing.T) {
			outputs := map[string]string{}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
				outputs[verb] = fmt.Sprintf(verb, x)
			}
			outputs["Sprint"] = fmt.Sprint(x)
			outputs["%v of a pointer"] = fmt.Sprintf("%+v", &x)
			outputs["an error"] = fmt.Errorf("create: %v", x).Error()
			var logs bytes.Buffer
			slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "x", x)
			slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "x", x)
			outputs["slog"] = logs.String()
			if js, err := json.Marshal(x); err == nil {
				outputs["json"] = string(js)
			}
			for out, s := range outputs {
				for _, leak := range leaks {
					if strings.Contains(s, leak) {
						t.Errorf("%s leaks the token: %s", out, s)
					}
				}
			}
		})
	}
}

func TestAValueShowsItIsRedacted(t *testing.T) {
	v := New(token)
	js, err := json.Marshal(struct{ Token Value }{v})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := v.MarshalText()
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "token", v)
	for how, got := range map[string]string{
		"%v": fmt.Sprintf("%v", v), "%s": fmt.Sprintf("%s", v), "%#v": fmt.Sprintf("%#v", v),
		"json": string(js), "text": string(text), "slog": logs.String(),
	} {
		if !strings.Contains(got, Redacted) {
			t.Errorf("%s = %q, want it to show %s", how, got, Redacted)
		}
	}
}

func TestRevealIsTheOnlyWayToTheToken(t *testing.T) {
	v := New(token)
	if v.Reveal() != token || v.IsZero() {
		t.Errorf("Reveal = %q, IsZero = %v", v.Reveal(), v.IsZero())
	}
	var zero Value
	if zero.Reveal() != "" || !zero.IsZero() || !New("").IsZero() {
		t.Error("the zero Value is not empty")
	}
}

func TestGobRefusesAValue(t *testing.T) {
	// gob encodes exported fields only; Value has none, so a Value cannot be shipped by
	// gob at all — the point is that nothing starts leaking if someone tries.
	err := gob.NewEncoder(&bytes.Buffer{}).Encode(struct{ Token Value }{New(token)})
	if err == nil {
		t.Fatal("gob encoded a Value")
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("the gob error shows the token")
	}
}
