package servicebus

import (
	"fmt"
	"strings"
)

// Claim is a right a SAS rule grants, as Azure's Send, Listen and Manage claims (and, for
// Entra principals, the Data Sender, Data Receiver and Data Owner roles).
type Claim uint8

const (
	// Send: attach a sender, schedule and cancel scheduled messages.
	Send Claim = 1 << iota
	// Listen: attach a receiver, peek, renew locks, settle, session state.
	Listen
	// Manage implies Send and Listen.
	Manage
)

func (c Claim) String() string {
	var names []string
	for _, n := range []struct {
		c    Claim
		name string
	}{{Manage, "Manage"}, {Send, "Send"}, {Listen, "Listen"}} {
		if c&n.c != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// Rights are one SAS key's claims per entity: the key is an entity path as the store
// names it ("hr-offboarding", "pat-events"; "" = the whole namespace), and claims on a
// topic cover its subscriptions, as a role assigned at a topic's scope does in Azure. A
// key with no Rights in Options has Manage on the namespace, like Microsoft's emulator's
// only key (RootManageSharedAccessKey).
type Rights map[string]Claim

// allows reports whether r grants need (any one of its bits) on the entity address.
func (r Rights) allows(address string, need Claim) bool {
	if r == nil {
		return true
	}
	for path, have := range r {
		if have&Manage != 0 {
			have |= Send | Listen
		}
		if have&need != 0 && covers(strings.ToLower(path), address) {
			return true
		}
	}
	return false
}

// claimFor is the claim an operation on a $management link needs: scheduling is a send,
// everything else (peek, locks, settlement, sessions) belongs to a receiver.
func claimFor(op string) Claim {
	switch op {
	case opSchedule, opCancelScheduled:
		return Send
	default:
		return Listen
	}
}

// missingClaim is the description Azure gives a principal that lacks a claim.
func missingClaim(need Claim, address string) string {
	return fmt.Sprintf("Unauthorized access. '%s' claim(s) are required to perform this operation. Resource: '%s'.", need, address)
}
