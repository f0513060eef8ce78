package cli

import (
	"context"

	"github.com/pkg/browser"
)

// browserKey carries the function `patrol login` opens the sign-in URL with: the seam
// through which the end-to-end tests play the person at the browser.
type browserKey struct{}

// WithBrowser returns ctx carrying open, which `patrol login` then calls with the sign-in
// URL instead of opening the system browser.
func WithBrowser(ctx context.Context, open func(url string) error) context.Context {
	return context.WithValue(ctx, browserKey{}, open)
}

// browserOpener is the context's browser, else the system's (xdg-open, open, or the
// Windows URL handler), which is what MSAL itself would use.
func browserOpener(ctx context.Context) func(url string) error {
	if open, ok := ctx.Value(browserKey{}).(func(string) error); ok && open != nil {
		return open
	}
	return browser.OpenURL
}
