package demo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/patrol-dev/patrol/internal/config"
	"github.com/patrol-dev/patrol/internal/devops"
	devopsemu "github.com/patrol-dev/patrol/internal/local/emulator/devops"
	"github.com/patrol-dev/patrol/internal/local/stack"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// Check is one invariant's verdict.
type Check struct {
	Name     string
	Failures []string // empty: the invariant holds
	Checked  int      // how many things were looked at
}

// OK reports whether the invariant holds.
func (c Check) OK() bool { return len(c.Failures) == 0 }

// Invariant names (docs/design.md "The rotation protocol").
const (
	InvWorkingPAT    = "the current version of every managed secret holds a working PAT"
	InvOnePATPerOp   = "at most one new PAT per operation (a crashed attempt's PAT is revoked by the retry)"
	InvNoLeftovers   = "no PAT patrol created stays active unreferenced past its grace period"
	InvNoTokenLeaked = "no token value appears in any log, event or dead-lettered message"
)

// CheckInvariants inspects the emulators after a run. extraText is more output to
// search for token values (the demo's own timeline, a test's captured output).
func (s *System) CheckInvariants(ctx context.Context, extraText ...string) ([]Check, error) {
	org := stack.Organization
	secrets, err := s.Stack.KV.Secrets(stack.Vault)
	if err != nil {
		return nil, err
	}
	pats := s.Stack.DevOps.PATs(org)
	now := s.Stack.Clock.Now()
	byID := map[string]devopsemu.PATInfo{}
	for _, p := range pats {
		byID[strings.ToLower(p.AuthorizationID)] = p
	}

	// 1. Working PAT, verified with connectionData as the PAT itself.
	working := Check{Name: InvWorkingPAT}
	dc, err := devops.NewClient(devops.Options{BaseURL: s.Stack.DevOpsURL, HTTPClient: s.Stack.HTTP,
		Token: func(context.Context) (string, error) {
			return "", errors.New("not used: connectionData authenticates as the PAT")
		}})
	if err != nil {
		return nil, err
	}
	referenced := map[string]bool{} // PAT ids current versions hold
	var managed []string
	for _, sec := range secrets {
		tags := sec.Current.Tags
		if sec.Deleted || !rotation.IsManaged(tags) {
			continue
		}
		managed = append(managed, sec.Name)
		working.Checked++
		referenced[strings.ToLower(tags[rotation.TagPATID])] = true
		value, err := s.Stack.KV.SecretValue(stack.Vault, sec.Name, "")
		if err != nil {
			working.Failures = append(working.Failures, fmt.Sprintf("%s: %v", sec.Name, err))
			continue
		}
		u, err := dc.VerifyPAT(ctx, tags[rotation.TagOrg], secret.New(value))
		switch {
		case err != nil:
			working.Failures = append(working.Failures, fmt.Sprintf("%s (version %s): connectionData refused its PAT: %v", sec.Name, sec.Current.Version, err))
		case !strings.HasSuffix(strings.ToLower(u.Descriptor), strings.ToLower(tags[rotation.TagOwner])):
			working.Failures = append(working.Failures, fmt.Sprintf("%s: its PAT authenticates as %s, but patrol-owner says %s", sec.Name, u.Descriptor, tags[rotation.TagOwner]))
		}
	}

	// 2. At most one PAT per operation (the operation id is in the display name) that
	// is not revoked: an attempt that crashed after creating a PAT leaves one, and the
	// retry revokes it before creating its own (docs/design.md step 3).
	perOp := Check{Name: InvOnePATPerOp}
	ops := map[string][]string{}
	for _, p := range pats {
		if secret, op, ok := rotation.ParseDisplayName(p.DisplayName); ok {
			ops[secret+"/"+op] = append(ops[secret+"/"+op], p.AuthorizationID)
			if p.Status == devopsemu.StatusRevoked || !p.RevokedAt.IsZero() {
				continue
			}
			ops["live:"+secret+"/"+op] = append(ops["live:"+secret+"/"+op], p.AuthorizationID)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(ops)) {
		live, ok := strings.CutPrefix(k, "live:")
		if !ok {
			perOp.Checked++
			continue
		}
		if n := len(ops[k]); n > 1 {
			perOp.Failures = append(perOp.Failures, fmt.Sprintf("operation %s has %d unrevoked PATs: %s", live, n, strings.Join(ops[k], ", ")))
		}
	}

	// 3. Nothing patrol created (or replaced) stays active past its grace period
	// unless a current version holds it.
	leftovers := Check{Name: InvNoLeftovers}
	inGrace := map[string]bool{}
	for _, name := range managed {
		versions, err := s.Stack.KV.Versions(stack.Vault, name)
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			prev := strings.ToLower(v.Tags[rotation.TagPreviousPATID])
			if prev == "" {
				continue
			}
			pol, err := rotation.ParsePolicy(v.Tags, s.Ops.Defaults)
			grace := s.Ops.Defaults.Grace
			if err == nil {
				grace = pol.Grace
			}
			if now.Before(v.Created.Add(grace)) {
				inGrace[prev] = true
				continue
			}
			// A replaced PAT, patrol's or a person's: revoked once its grace ended.
			leftovers.Checked++
			if p, ok := byID[prev]; ok && p.Status == devopsemu.StatusActive && !referenced[prev] {
				leftovers.Failures = append(leftovers.Failures, fmt.Sprintf("%s: PAT %s (%q) replaced at %s is still active %s after its grace period",
					name, p.AuthorizationID, p.DisplayName, v.Created.Format(time.RFC3339), now.Sub(v.Created.Add(grace)).Round(time.Second)))
			}
		}
	}
	for _, p := range pats {
		id := strings.ToLower(p.AuthorizationID)
		if _, _, ok := rotation.ParseDisplayName(p.DisplayName); !ok || p.Status != devopsemu.StatusActive || referenced[id] || inGrace[id] {
			continue
		}
		leftovers.Checked++
		if now.Sub(p.ValidFrom) > rotation.OrphanMinAge {
			leftovers.Failures = append(leftovers.Failures, fmt.Sprintf("PAT %s (%q) is active and no secret holds it", p.AuthorizationID, p.DisplayName))
		}
	}

	// 4. No token value anywhere people or machines can read.
	leaks := Check{Name: InvNoTokenLeaked}
	tokens, err := s.tokenValues(managed)
	if err != nil {
		return nil, err
	}
	texts := map[string]string{"handler and devhost logs": s.Capture.String()}
	if s.Outcomes != nil {
		texts["pat-events outcomes"] = strings.Join(s.Outcomes.Raw(), "\n")
	}
	dl, err := s.deadLetters(ctx)
	if err != nil {
		return nil, err
	}
	texts["dead-lettered messages"] = dl
	for i, t := range extraText {
		texts[fmt.Sprintf("printed output #%d", i+1)] = t
	}
	for _, where := range slices.Sorted(maps.Keys(texts)) {
		for _, tok := range tokens {
			leaks.Checked++
			if strings.Contains(texts[where], tok.value) {
				leaks.Failures = append(leaks.Failures, fmt.Sprintf("%s contain %s", where, tok.what))
			}
		}
	}
	return []Check{working, perOp, leftovers, leaks}, nil
}

type tokenValue struct{ what, value string }

// tokenValues are every PAT value any version of a managed secret ever held, and the
// stack's passwords and keys.
func (s *System) tokenValues(managed []string) ([]tokenValue, error) {
	var out []tokenValue
	for _, name := range managed {
		versions, err := s.Stack.KV.Versions(stack.Vault, name)
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			val, err := s.Stack.KV.SecretValue(stack.Vault, name, v.Version)
			if err != nil {
				return nil, err
			}
			if len(val) >= 8 {
				out = append(out, tokenValue{what: fmt.Sprintf("the PAT of %s version %s", name, v.Version), value: val})
			}
		}
	}
	out = append(out,
		tokenValue{"the service account's password", s.Stack.ServiceAccountPassword},
		tokenValue{"the workload app's client secret", s.Stack.WorkloadSecret},
	)
	if key := sasKey(s.Stack.Env(s.CAFile)[config.SettingServiceBusConnection]); key != "" {
		out = append(out, tokenValue{"the Service Bus key", key})
	}
	return out, nil
}

func sasKey(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		if v, ok := strings.CutPrefix(part, "SharedAccessKey="); ok && len(v) >= 8 {
			return v
		}
	}
	return ""
}

// deadLetters peeks every dead-letter queue patrol uses and renders the messages
// (reason, description, body).
func (s *System) deadLetters(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, q := range []string{"hr-offboarding", "pat-rotations", "pat-revocations"} {
		msgs, err := s.PeekDeadLetters(ctx, q)
		if err != nil {
			return "", err
		}
		for _, m := range msgs {
			fmt.Fprintf(&b, "%s: %s %s %s\n", q, deref(m.DeadLetterReason), deref(m.DeadLetterErrorDescription), m.Body)
		}
	}
	return b.String(), nil
}

// PeekDeadLetters returns the messages in a queue's dead-letter queue (not removing
// them).
func (s *System) PeekDeadLetters(ctx context.Context, queue string) ([]*azservicebus.ReceivedMessage, error) {
	r, err := s.sbc.NewReceiverForQueue(queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		return nil, fmt.Errorf("demo: dead-letter queue of %s: %w", queue, err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	var out []*azservicebus.ReceivedMessage
	for {
		msgs, err := r.PeekMessages(ctx, 100, nil)
		if err != nil {
			return nil, fmt.Errorf("demo: peek the dead-letter queue of %s: %w", queue, err)
		}
		if len(msgs) == 0 {
			return out, nil
		}
		out = append(out, msgs...)
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
