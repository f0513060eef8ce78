package keyvault

import (
	"net/http"
	"time"
)

// RateLimit is a per-vault request limit over a sliding window, modelled on Key Vault's
// service limits: 300 secret creations and 4000 other transactions per 10 seconds.
// A zero Writes or Others leaves that class unlimited.
type RateLimit struct {
	Window time.Duration
	Writes int // SetSecret and RestoreSecret
	Others int // every other operation
}

// AzureRateLimit is Key Vault's documented per-vault limit.
var AzureRateLimit = RateLimit{Window: 10 * time.Second, Writes: 300, Others: 4000}

// rateState remembers when the vault accepted requests, oldest first, per class.
type rateState struct {
	writes, others []time.Time
}

func isWrite(op string) bool { return op == OpSetSecret || op == OpRestoreSecret }

// admit decides whether a request at now fits the limit and records it if so.
// Refused requests are not recorded: Azure does not count throttled calls.
func (rs *rateState) admit(limit RateLimit, op string, now time.Time) bool {
	list, max := &rs.others, limit.Others
	if isWrite(op) {
		list, max = &rs.writes, limit.Writes
	}
	if max <= 0 || limit.Window <= 0 {
		return true
	}
	cut := now.Add(-limit.Window)
	i := 0
	for i < len(*list) && !(*list)[i].After(cut) {
		i++
	}
	*list = (*list)[i:]
	if len(*list) >= max {
		return false
	}
	*list = append(*list, now)
	return true
}

func throttled() *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "Throttled",
		message: "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}
}
