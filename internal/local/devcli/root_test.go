package devcli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHandlerBinary(t *testing.T) {
	dir := t.TempDir()
	built := filepath.Join(dir, "patrol")
	if err := os.WriteFile(built, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		explicit, appRoot string
		want              string // path, or "" when an error is wanted
		wantErr           string
	}{
		"an explicit handler path is used as given": {
			explicit: built, appRoot: dir, want: built,
		},
		"an explicit path that does not exist is refused, naming the flag": {
			explicit: filepath.Join(dir, "missing"), appRoot: dir, wantErr: "--handler",
		},
		"an app root without ./cmd/patrol asks for --handler instead of running this program": {
			appRoot: dir, wantErr: "pass --handler",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := handlerBinary(context.Background(), tc.explicit, tc.appRoot, t.TempDir())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("handlerBinary() error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("handlerBinary() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
