package entra

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
)

// Browser plays the person at a web browser in the authorization-code flow, for tests
// and the local stack. Its Open has the signature of MSAL's public.WithOpenURL hook: given
// the authorize URL a client would open in the system browser, it loads the emulator's
// sign-in page over HTTP, signs in as Account with Password (or cancels, with Deny), and
// hands the answer to the client's redirect URI as a browser would: it submits the
// form_post page, or follows the redirect.
type Browser struct {
	// HTTP must trust the emulator's CA and reach the client's loopback listener.
	HTTP     *http.Client
	Account  string
	Password string
	// Deny presses Cancel instead of signing in.
	Deny bool
}

// ErrSignInRefused is wrapped by Open when the sign-in page or Entra's error page refused
// the sign-in; the message is the page's.
var ErrSignInRefused = errors.New("the sign-in page refused")

var (
	errorLine   = regexp.MustCompile(`<p class="err"[^>]*>([^<]*)</p>`)
	postForm    = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// Open completes the sign-in that authorizeURL starts.
func (b Browser) Open(authorizeURL string) error {
	resp, err := b.HTTP.Get(authorizeURL)
	if err != nil {
		return fmt.Errorf("browser: open the authorize URL: %w", err)
	}
	page, err := readPage(resp)
	if err != nil {
		return err
	}
	if done, err := b.submitIfFormPost(page); done {
		return err // the authorize request failed and its error went to the client
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("ctx") == "" {
		return pageError(resp.StatusCode, page)
	}
	form := url.Values{"username": {b.Account}, "password": {b.Password}, "action": {"approve"}}
	if b.Deny {
		form.Set("action", "deny")
	}
	resp, err = b.HTTP.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		return fmt.Errorf("browser: submit the sign-in page: %w", err)
	}
	if page, err = readPage(resp); err != nil {
		return err
	}
	if done, err := b.submitIfFormPost(page); done {
		return err
	}
	if resp.Request.URL.Path == "/devicelogin" {
		return pageError(resp.StatusCode, page)
	}
	return nil // a query or fragment redirect, already followed to the client
}

// submitIfFormPost posts a form_post page's fields to its action, as its script would.
func (b Browser) submitIfFormPost(page string) (bool, error) {
	m := postForm.FindStringSubmatch(page)
	if m == nil {
		return false, nil
	}
	form := url.Values{}
	for _, f := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(html.UnescapeString(f[1]), html.UnescapeString(f[2]))
	}
	resp, err := b.HTTP.PostForm(html.UnescapeString(m[1]), form)
	if err != nil {
		return true, fmt.Errorf("browser: post the answer to the redirect URI: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return true, nil
}

func readPage(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("browser: read %s: %w", resp.Request.URL.Path, err)
	}
	return string(b), nil
}

func pageError(status int, page string) error {
	msg := "no message"
	if m := errorLine.FindStringSubmatch(page); m != nil {
		msg = html.UnescapeString(m[1])
	}
	return fmt.Errorf("%w (HTTP %d): %s", ErrSignInRefused, status, msg)
}
