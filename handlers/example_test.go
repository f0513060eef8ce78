package handlers_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/patrol-dev/patrol/handlers"
)

// How `patrol serve` wires the handler: listen first, build Azure clients on the first
// invocation, log with the invocation id on every record.
func Example() {
	ctx := context.Background()
	logger := slog.New(handlers.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	addr, err := handlers.ListenAddr(os.Getenv)
	if err != nil {
		logger.Error("serve", slog.Any("error", err))
		return
	}
	h := handlers.New(handlers.Options{
		Logger: logger,
		Deps: func(ctx context.Context) (handlers.Deps, error) {
			// Load settings and build the Key Vault, Service Bus and DevOps clients
			// here; return the App and the dead-letterer / failure reporter.
			return handlers.Deps{}, nil
		},
	})
	_ = handlers.Serve(ctx, addr, h)
}
