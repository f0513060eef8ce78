// Package functionapp is patrol's function app: the business logic behind every
// function, implementing handlers.App on top of the rotation core.
//
// Each method follows gather → decide → act. The deciding parts (which Key Vault event
// becomes which command, which secrets an offboarding touches, how a secret's status
// reads) are pure functions of their inputs — commands.go builds the commands,
// wire.go converts between the message contract's shapes and the core's — and are
// table-tested without I/O; the methods here only read the vault, call those functions
// and send what they return. Commands are sent to Service Bus with deterministic MessageIds (operation
// ids derived from what the command means), so a duplicate trigger — an Event Grid
// redelivery, an HR message delivered twice, two overlapping sweeps — collapses into one
// command through the queue's duplicate detection, and a redelivered command finds its
// work done through the core's patrol-op check.
package functionapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patrol-dev/patrol/handlers"
	"github.com/patrol-dev/patrol/internal/contract"
	"github.com/patrol-dev/patrol/internal/rotation"
)

// Rotator is the rotation core (*rotation.Rotator).
type Rotator interface {
	Gather(ctx context.Context, secret string) (rotation.Input, error)
	Run(ctx context.Context, secret string, trig rotation.Trigger) (rotation.Outcome, error)
	Revoke(ctx context.Context, rev rotation.Revocation) (rotation.Outcome, error)
}

// Inventory lists the managed secrets (the Key Vault adapter).
type Inventory interface {
	ListManaged(ctx context.Context) ([]rotation.Version, error)
}

// Commands sends patrol's commands (the Service Bus adapter). SendRotation puts cmd on
// the session queue with SessionId = cmd.Secret and MessageId = cmd.OperationID;
// ScheduleRevocation uses rev.MessageID(); SendRevocation sends cmd as it is with
// MessageId id. A zero `at` means now.
type Commands interface {
	SendRotation(ctx context.Context, cmd contract.RotationCommand, at time.Time) error
	ScheduleRevocation(ctx context.Context, rev rotation.Revocation, at time.Time) error
	SendRevocation(ctx context.Context, cmd contract.RevocationCommand, id string, at time.Time) error
}

// Publisher publishes outcomes on the pat-events topic.
type Publisher interface {
	Publish(ctx context.Context, o rotation.Outcome) error
}

// Replies reads the outcome that ended an operation from state every instance shares
// (the Service Bus adapter: pat-replies, session = operation id). On Flex Consumption
// RotateNow and SecretStatus run on other instances than Rotate, so nothing in this
// process's memory could tell them. ok is false while the operation has not ended.
type Replies interface {
	Reply(ctx context.Context, op string) (contract.Outcome, bool, error)
}

// PATLister lists the active PATs that patrol created (display name "patrol <secret>
// <op>") under a service account in one organization. The sweep needs it to find
// orphans; without one the sweep only enqueues due rotations.
type PATLister interface {
	PatrolPATs(ctx context.Context, account, org string) ([]rotation.PATInfo, error)
}

// Options configure an App.
type Options struct {
	Rotator   Rotator
	Inventory Inventory
	Commands  Commands
	Publisher Publisher
	// Replies tells RotateNow and SecretStatus how an operation ended when it did not
	// rotate (failed, skipped, needs attention). Without it they know only what the
	// vault shows (rotated) and report anything else as still pending.
	Replies Replies
	PATs    PATLister // optional: orphan clean-up in Sweep, orphan check in Revoke
	// People lists a person's PATs for the account of a person (account.go); without
	// it every organization's listing says it was refused.
	People People
	// Unmanaged is what Offboard does with a leaver's PATs no managed secret holds
	// (PATROL_OFFBOARDING_UNMANAGED); empty means UnmanagedReport. The revocations it
	// asks for go out through Commands (offboarding.go).
	Unmanaged UnmanagedPolicy
	// CommandKeys sign RotateNow's commands and verify signed ones in Rotate. Without
	// them RotateNow refuses and every command that must be signed is rejected.
	CommandKeys CommandKeys
	// History lists a secret's versions for Revoke's record check; without it only the
	// current version counts.
	History History
	// ManualCooldown is the least time between two manual rotations of one secret
	// (PATROL_MANUAL_COOLDOWN); zero means DefaultManualCooldown, negative none.
	ManualCooldown time.Duration
	Defaults       rotation.Defaults
	// Vault is the vault's name; events from another vault are ignored. Empty: any.
	Vault string
	// Clock is the clock; default rotation.SystemClock. The local stack passes the
	// emulators' time.
	Clock  rotation.Clock
	Logger *slog.Logger
	// PollInterval is how often RotateNow looks for the outcome it waits for; default
	// 250ms.
	PollInterval time.Duration
	// FanOut bounds concurrent sends in Offboarding and Sweep; default 8.
	FanOut int
	// Reschedule sends throttled commands again later (reschedule.go); without it a
	// throttled command goes back to the trigger.
	Reschedule Rescheduler
}

// App implements handlers.App.
type App struct {
	o   Options
	log *slog.Logger
}

var _ handlers.App = (*App)(nil)

// New checks opts and returns an App. It does no I/O.
func New(o Options) (*App, error) {
	switch {
	case o.Rotator == nil:
		return nil, errors.New("functionapp: Options.Rotator is required")
	case o.Inventory == nil:
		return nil, errors.New("functionapp: Options.Inventory is required")
	case o.Commands == nil:
		return nil, errors.New("functionapp: Options.Commands is required")
	case o.Publisher == nil:
		return nil, errors.New("functionapp: Options.Publisher is required")
	}
	if o.Clock == nil {
		o.Clock = rotation.SystemClock
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.FanOut <= 0 {
		o.FanOut = 8
	}
	if o.ManualCooldown == 0 {
		o.ManualCooldown = DefaultManualCooldown
	}
	return &App{o: o, log: o.Logger}, nil
}

func (a *App) now() time.Time { return a.o.Clock.Now().UTC() }

// KeyVaultEvent turns a near-expiry or expired event into a rotation command for the
// version it names, unless the secret is not patrol's or has moved on.
func (a *App) KeyVaultEvent(ctx context.Context, ev handlers.KeyVaultEvent) error {
	log := a.log.With("secret", ev.Secret, "version", ev.Version, "eventId", ev.ID)
	in, err := a.o.Rotator.Gather(ctx, ev.Secret)
	if err != nil {
		return fmt.Errorf("functionapp: read secret %q: %w", ev.Secret, err)
	}
	cmd, skip := EventCommand(ev, in, a.o.Vault, a.now())
	if skip != "" {
		log.InfoContext(ctx, "event skipped", "reason", skip)
		return nil
	}
	if err := a.o.Commands.SendRotation(ctx, cmd, time.Time{}); err != nil {
		return fmt.Errorf("functionapp: enqueue rotation of %q: %w", ev.Secret, err)
	}
	log.InfoContext(ctx, "rotation enqueued", "operationId", cmd.OperationID, "trigger", string(cmd.Trigger))
	return nil
}

// Offboard enqueues one offboarding command per managed secret whose current PAT
// belongs to the person, publishes needs-attention for every secret whose service
// account is the person (re-issuing under that account would not help), then publishes
// the account of every PAT the person holds (offboarding.go).
func (a *App) Offboard(ctx context.Context, msg contract.OffboardingMessage) error {
	log := a.log.With("eventId", msg.EventID, "person", msg.Person.UPN, "personObjectId", msg.Person.ObjectID)
	versions, err := a.offboardingInventory(ctx)
	if err != nil {
		return fmt.Errorf("functionapp: list managed secrets: %w", err)
	}
	plan := PlanOffboarding(msg, versions, a.o.Defaults, a.now())
	if len(plan.Commands) == 0 && len(plan.Attention) == 0 {
		log.InfoContext(ctx, "offboarding: the person owns no managed PAT; nothing to re-issue", "secrets", len(versions))
		return a.report(ctx, msg, versions)
	}
	err = a.fanOut(ctx, len(plan.Commands), func(i int) error {
		return a.o.Commands.SendRotation(ctx, plan.Commands[i], time.Time{})
	})
	if err != nil {
		return fmt.Errorf("functionapp: offboarding %s: enqueue: %w", msg.EventID, err)
	}
	for _, o := range plan.Attention {
		if err := a.o.Publisher.Publish(ctx, o); err != nil {
			return fmt.Errorf("functionapp: offboarding %s: publish: %w", msg.EventID, err)
		}
		log.WarnContext(ctx, "offboarding: the secret's service account is the person leaving", "secret", o.Secret)
	}
	log.InfoContext(ctx, "offboarding: rotations enqueued", "commands", len(plan.Commands), "needsAttention", len(plan.Attention))
	// Once the re-issues are queued: the account of every PAT of the person.
	return a.report(ctx, msg, versions)
}

// Rotate runs the rotation protocol for one command. The core publishes the outcome
// itself; a permanent failure is therefore acknowledged (it is on pat-events with its
// reason, and a redelivery could not help), a transient one is returned for a retry:
// the core has already retried it and sat out short throttling, so what is left is the
// trigger's redelivery. A throttle longer than the core waits reschedules the command
// instead (reschedule.go).
//
// A command that must be signed (manual, revokeNow) is verified first; a refusal is
// returned as a permanent contract.ErrUnauthenticated error, which the handler reports
// (failed outcome, reason patrol.Unauthenticated) without running anything. A manual
// rotation inside the cooldown of the previous one is skipped with an outcome.
func (a *App) Rotate(ctx context.Context, cmd contract.RotationCommand) error {
	if cmd.NeedsSignature() {
		err := a.verify(ctx, "", cmd.Signature, func(k contract.CommandKey) error { return cmd.Verify(k, a.now()) })
		if err != nil {
			a.log.WarnContext(ctx, "rotation command refused", "secret", cmd.Secret, "operationId", cmd.OperationID,
				"trigger", string(cmd.Trigger), "error", err)
			return err
		}
	}
	if cmd.Trigger == contract.TriggerManual && a.o.ManualCooldown > 0 {
		in, err := a.o.Rotator.Gather(ctx, cmd.Secret)
		if err != nil {
			return fmt.Errorf("functionapp: read secret %q: %w", cmd.Secret, err)
		}
		if left := CooldownLeft(in, a.o.ManualCooldown, a.now()); left > 0 && in.Current.Tags[rotation.TagOp] != cmd.OperationID {
			o := rotation.Outcome{Status: rotation.StatusSkipped, Secret: cmd.Secret, Op: cmd.OperationID, Trigger: cmd.Trigger,
				Reason: ReasonCooldown, RequestedBy: cmd.RequestedBy, Time: a.now(),
				Message: fmt.Sprintf("a manual rotation wrote the current version less than %s ago; not rotating again for %s", a.o.ManualCooldown, left.Round(time.Second))}
			if err := a.o.Publisher.Publish(ctx, o); err != nil {
				return fmt.Errorf("functionapp: publish: %w", err)
			}
			return nil
		}
	}
	o, err := a.o.Rotator.Run(ctx, cmd.Secret, TriggerOf(cmd))
	if handled, rerr := a.rescheduleRotation(ctx, cmd, err); handled {
		return rerr
	}
	switch {
	case err == nil:
		return nil
	case rotation.IsPermanent(err) && (o.Status == rotation.StatusFailed || o.Status == rotation.StatusNeedsAttention):
		a.log.WarnContext(ctx, "rotation gave up; outcome published", "secret", cmd.Secret, "operationId", cmd.OperationID,
			"status", string(o.Status), "error", err)
		return nil
	case rotation.IsPermanent(err):
		return fmt.Errorf("%w: %w", handlers.ErrPermanent, err)
	default:
		return err
	}
}

// Revoke performs a scheduled revocation; a PAT that is already gone is success (the
// core treats not-found as done). Only a PAT patrol has on record for the secret is
// revoked (OnRecord); anything else is refused with a published outcome. Before the
// replaced PAT's grace end only a revocation patrol signed is carried out; any other is
// deferred to the grace end (checkEarly). Permanent failures go back to the handler,
// which fails the message until Service Bus dead-letters it.
func (a *App) Revoke(ctx context.Context, cmd contract.RevocationCommand) error {
	if cmd.Kind == contract.RevokeUnmanaged {
		return a.revokeUnmanaged(ctx, cmd)
	}
	versions, err := a.checkRevocation(ctx, cmd)
	if err != nil {
		return err
	}
	if deferred, err := a.checkEarly(ctx, cmd, versions); deferred || err != nil {
		return err
	}
	held := cmd // as it came: what a reschedule sends again (the signature covers the owner)
	cmd = withOwnerOnRecord(cmd, versions)
	_, err = a.o.Rotator.Revoke(ctx, RevocationOf(cmd))
	if err != nil && errors.Is(err, rotation.ErrNotFound) {
		return nil
	}
	if handled, rerr := a.rescheduleRevocation(ctx, held, err); handled {
		return rerr
	}
	return err
}

// Sweep enqueues a rotation for every managed secret that is due (which covers missed
// wake-ups and lost events) and schedules the revocation of orphaned PATs.
func (a *App) Sweep(ctx context.Context, tick handlers.SweepTick) error {
	now := a.now()
	versions, err := a.sweepInventory(ctx, now)
	if err != nil {
		return fmt.Errorf("functionapp: sweep: list managed secrets: %w", err)
	}
	rows := rotation.Plan(versions, a.o.Defaults, now)
	cmds := SweepCommands(rows, now)
	for _, r := range rows {
		// One record per managed secret and sweep: the workbook's "days to expiry"
		// (infra/modules/queries/expiry.kql) reads these.
		a.log.InfoContext(ctx, "sweep: secret", "secret", r.Secret, "expires", r.Expires, "daysLeft", r.DaysLeft,
			"action", string(r.Action), "reason", string(r.Reason))
		if r.Action == rotation.ActionAttention {
			a.log.WarnContext(ctx, "sweep: secret needs attention", "secret", r.Secret, "reason", string(r.Reason), "message", r.Message)
		}
	}
	err = a.fanOut(ctx, len(cmds), func(i int) error { return a.o.Commands.SendRotation(ctx, cmds[i], time.Time{}) })
	if err != nil {
		return fmt.Errorf("functionapp: sweep: enqueue: %w", err)
	}
	orphans := 0
	if a.o.PATs != nil {
		var errs []error
		for _, g := range AccountOrgs(versions, a.o.Defaults) {
			pats, err := a.o.PATs.PatrolPATs(ctx, g.Account, g.Org)
			if err != nil {
				errs = append(errs, fmt.Errorf("list PATs of %s in %s: %w", g.Account, g.Org, err))
				continue
			}
			for _, rev := range OrphanRevocations(pats, versions, a.o.Defaults, g, now) {
				if err := a.o.Commands.ScheduleRevocation(ctx, rev, now); err != nil {
					errs = append(errs, fmt.Errorf("schedule revocation of orphan %s: %w", rev.PATID, err))
					continue
				}
				orphans++
				a.log.InfoContext(ctx, "sweep: orphaned PAT scheduled for revocation", "secret", rev.Secret, "patId", rev.PATID, "operationId", rev.Op)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("functionapp: sweep: orphans: %w", err)
		}
	}
	a.log.InfoContext(ctx, "sweep: done", "secrets", len(versions), "enqueued", len(cmds), "orphans", orphans, "pastDue", tick.IsPastDue)
	return nil
}

// fanOut runs f(0..n-1) with at most FanOut in flight and returns every error.
func (a *App) fanOut(ctx context.Context, n int, f func(i int) error) error {
	if n == 0 {
		return nil
	}
	sem := make(chan struct{}, a.o.FanOut)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
