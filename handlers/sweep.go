package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/patrol-dev/patrol/internal/contract"
)

// Sweep: the timer that enqueues what is due and cleans up orphaned PATs.
var sweepFunction = Function{
	Name: "Sweep", Trigger: BindingTimerTrigger, Binding: "timer", Schedule: "%PATROL_SWEEP_SCHEDULE%", invoke: invokeSweep,
}

// invokeSweep handles a Sweep firing. Failures fail the invocation so they show as failed
// runs; the next firing sweeps again.
func invokeSweep(ctx context.Context, c call) *response {
	log, fn, inv := c.log, c.fn, c.inv
	raw, _ := inv.binding(fn.Binding)
	tick, err := DecodeSweepTick(raw)
	if err != nil {
		log.ErrorContext(ctx, "decode timer", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{err.Error()}}
	}
	tick.Now = inv.sysNow()
	if err := c.deps.App.Sweep(ctx, tick); err != nil {
		log.ErrorContext(ctx, "sweep", slog.Any("error", err))
		return &response{status: http.StatusInternalServerError, Logs: []string{fmt.Sprintf("sweep: %v", err)}}
	}
	log.InfoContext(ctx, "sweep done", slog.Bool("pastDue", tick.IsPastDue))
	return &response{status: http.StatusOK, Logs: []string{"Sweep: done"}}
}

// SweepTick is one firing of the Sweep timer.
type SweepTick struct {
	Now         time.Time `json:"now,omitzero"`  // the host's clock (Metadata.sys.UtcNow); zero if absent
	IsPastDue   bool      `json:"isPastDue"`     // the firing is late (the app was down)
	Last        time.Time `json:"last,omitzero"` // previous scheduled firing, when the monitor knows it
	Next        time.Time `json:"next,omitzero"`
	LastUpdated time.Time `json:"lastUpdated,omitzero"`
}

// DecodeSweepTick reads the timer trigger value (`Data.<timer>`, a TimerInfo object; its
// ScheduleStatus is null when the schedule monitor is off).
func DecodeSweepTick(raw []byte) (SweepTick, error) {
	const doc = "timer"
	b, err := unwrapValue(raw)
	if err != nil {
		return SweepTick{}, contract.Malformed(doc, "", "%v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return SweepTick{}, contract.Malformed(doc, "", "must be a JSON object")
	}
	top = normalizeKeys(top)
	var t SweepTick
	if v, err := metaString(top["ispastdue"]); err != nil {
		return SweepTick{}, contract.Malformed(doc, "IsPastDue", "%v", err)
	} else if v != "" {
		if t.IsPastDue, err = strconv.ParseBool(v); err != nil {
			return SweepTick{}, contract.Malformed(doc, "IsPastDue", "not a boolean")
		}
	}
	if st := bytes.TrimSpace(top["schedulestatus"]); len(st) > 0 && !bytes.Equal(st, []byte("null")) {
		var status map[string]json.RawMessage
		if err := json.Unmarshal(st, &status); err != nil {
			return SweepTick{}, contract.Malformed(doc, "ScheduleStatus", "must be an object or null")
		}
		status = normalizeKeys(status)
		for _, f := range []struct {
			key, name string
			dst       *time.Time
		}{{"last", "Last", &t.Last}, {"next", "Next", &t.Next}, {"lastupdated", "LastUpdated", &t.LastUpdated}} {
			v, err := metaTime(status[f.key])
			if err != nil {
				return SweepTick{}, contract.Malformed(doc, "ScheduleStatus."+f.name, "%v", err)
			}
			// .NET's DateTime.MinValue means "never".
			if v.Year() > 1 {
				*f.dst = v
			}
		}
	}
	return t, nil
}
