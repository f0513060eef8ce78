package e2e

import (
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rotation"
)

// MSAL judges a cached access token's expiry by the wall clock; Azure DevOps (here, its
// emulator on the emulated clock — in Azure, Continuous Access Evaluation) may refuse
// it earlier. The same process must then fetch a fresh token and carry on.
func TestAnAccessTokenRefusedBeforeItsCachedExpiryIsReplacedOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustAdopt("refused")
	e.st.Clock.Advance(2 * time.Hour) // every token issued so far has expired for the emulators
	before := e.st.DevOps.Journal().Counts()
	o, err := e.rotate("refused", rotation.NewOpID())
	if err != nil || o.Status != rotation.StatusRotated {
		t.Fatalf("rotate with a token the emulators consider expired: %s %v", o.Status, err)
	}
	e.assertConverged("refused")
	refused := 0
	for _, en := range e.st.DevOps.Journal().Entries() {
		if en.Status == 401 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("Azure DevOps never refused the stale token (journal counts before %v): the test does not exercise the refresh", before)
	}
}
