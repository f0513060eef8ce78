package handlers

import (
	"context"
	"log/slog"
)

type invocationKey struct{}

type invocationInfo struct{ id, function string }

func withInvocation(ctx context.Context, id, function string) context.Context {
	return context.WithValue(ctx, invocationKey{}, invocationInfo{id: id, function: function})
}

// InvocationID returns the host's invocation id carried by ctx, or "".
func InvocationID(ctx context.Context) string {
	info, _ := ctx.Value(invocationKey{}).(invocationInfo)
	return info.id
}

// LogHandler wraps next so that every record logged with a context of an invocation
// (logger.InfoContext(ctx, …) anywhere below the App) carries `invocationId` and
// `function`. The wiring builds its logger with it; the App's code then needs no
// logger plumbing per invocation.
func LogHandler(next slog.Handler) slog.Handler { return invocationLogHandler{next} }

type invocationLogHandler struct{ next slog.Handler }

func (h invocationLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h invocationLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if info, ok := ctx.Value(invocationKey{}).(invocationInfo); ok {
		present := false
		r.Attrs(func(a slog.Attr) bool {
			present = a.Key == "invocationId"
			return !present
		})
		if !present {
			r = r.Clone()
			r.AddAttrs(slog.String("invocationId", info.id), slog.String("function", info.function))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h invocationLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return invocationLogHandler{h.next.WithAttrs(as)}
}

func (h invocationLogHandler) WithGroup(name string) slog.Handler {
	return invocationLogHandler{h.next.WithGroup(name)}
}
