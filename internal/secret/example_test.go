package secret_test

import (
	"fmt"

	"github.com/patrol-dev/patrol/internal/secret"
)

// A token never reaches a log, an error or JSON; Reveal is the one way to it.
func ExampleValue() {
	tok := secret.New("a-real-pat")
	fmt.Printf("%v %s %q\n", tok, tok, tok)
	fmt.Println(len(tok.Reveal()))
	// Output:
	// [REDACTED] [REDACTED] [REDACTED]
	// 10
}
