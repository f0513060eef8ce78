package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestAdoptReaderPrintsAGrantOnTheOneSecret(t *testing.T) {
	const reader = "66666666-6666-4666-8666-666666666666"
	var b bytes.Buffer
	printReaderGrants(&b, "kv-patrol-abc", "ado-feed-pat", []string{reader})
	for _, want := range []string{
		`az role assignment create --role "Key Vault Secrets User" --assignee-object-id ` + reader,
		`--scope "$(az keyvault show --name kv-patrol-abc --query id -o tsv)/secrets/ado-feed-pat"`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	if err := checkReaders([]string{reader}); err != nil {
		t.Errorf("an object id was refused: %v", err)
	}
	if err := checkReaders([]string{"pipeline@contoso.com"}); err == nil {
		t.Error("a reader that is not an object id was accepted")
	}
}
