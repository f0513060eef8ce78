package cli

// `patrol discover`: which of the vault's unmanaged secrets hold Azure DevOps PATs.
//
// Decision: only a value with the exact shape of a documented PAT format
// (devops.Shape) is ever sent anywhere, and then only to connectionData of the
// organizations patrol may work in (PATROL_ALLOWED_ORGS), as Basic auth, the way any
// client uses a PAT. Any other value — a database password, a connection string — never
// leaves this process. No value is stored or printed; the command reads secret values,
// so it is an operator command and never part of the function app.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patrol-dev/patrol/internal/devops"
	"github.com/patrol-dev/patrol/internal/keyvault"
	"github.com/patrol-dev/patrol/internal/rotation"
	"github.com/patrol-dev/patrol/internal/secret"
)

// Discovered is one secret that holds a PAT: `patrol discover -o json` prints a list.
type Discovered struct {
	Secret string            `json:"secret"`
	Format devops.PATFormat  `json:"format"`
	Orgs   []DiscoveredOwner `json:"organizations"`
	// Expires is the secret's exp attribute (Key Vault), the one expiry learnable
	// without the PAT's id; zero when unset.
	Expires time.Time `json:"expires,omitzero"`
	// Adopt is the command that starts managing the secret (scopes to be chosen).
	Adopt string `json:"adopt"`
}

// DiscoveredOwner is whom the PAT authenticates as in one organization.
type DiscoveredOwner struct {
	Org         string `json:"org"`
	User        string `json:"user"`        // sign-in name from the identity descriptor
	DisplayName string `json:"displayName"` // as Azure DevOps shows the user
}

// discoverVault is what discover reads from the vault (keyvault.Store).
type discoverVault interface {
	ListUnmanaged(ctx context.Context) ([]keyvault.Unmanaged, error)
	Value(ctx context.Context, name string) (secret.Value, error)
}

// patVerifier calls connectionData as a PAT (devops.Client).
type patVerifier interface {
	VerifyPAT(ctx context.Context, org string, token secret.Value) (devops.User, error)
}

// maxAttempts bounds the tries of one call that the service throttles or fails
// transiently; maxWait caps one wait for Retry-After.
const (
	maxAttempts = 4
	maxWait     = 5 * time.Minute
)

// discovery walks the vault.
type discovery struct {
	vault    discoverVault
	pats     patVerifier
	orgs     []string
	clock    rotation.Clock
	progress io.Writer
}

func (d discovery) run(ctx context.Context) ([]Discovered, int, error) {
	secrets, err := retry(ctx, d.clock, func() ([]keyvault.Unmanaged, error) { return d.vault.ListUnmanaged(ctx) })
	if err != nil {
		return nil, 0, err
	}
	var found []Discovered
	for i, s := range secrets {
		fmt.Fprintf(d.progress, "discover: %d/%d %s\n", i+1, len(secrets), s.Name)
		v, err := retry(ctx, d.clock, func() (secret.Value, error) { return d.vault.Value(ctx, s.Name) })
		if err != nil {
			return nil, 0, err
		}
		format := devops.Shape(v.Reveal())
		if format == "" {
			continue // never sent anywhere
		}
		got := Discovered{Secret: s.Name, Format: format, Expires: s.Expires, Orgs: []DiscoveredOwner{}}
		for _, org := range d.orgs {
			u, err := retry(ctx, d.clock, func() (devops.User, error) { return d.pats.VerifyPAT(ctx, org, v) })
			switch {
			case errors.Is(err, devops.ErrUnauthorized):
				continue // not a PAT of this organization (or no longer valid)
			case err != nil:
				return nil, 0, fmt.Errorf("discover %s in %s: %w", s.Name, org, err)
			}
			got.Orgs = append(got.Orgs, DiscoveredOwner{Org: org, User: signInName(u.Descriptor), DisplayName: u.DisplayName})
		}
		if len(got.Orgs) == 0 {
			continue
		}
		got.Adopt = fmt.Sprintf("patrol adopt %s --org %s --scopes \"SCOPES\"", s.Name, got.Orgs[0].Org)
		found = append(found, got)
	}
	return found, len(secrets), nil
}

// retry makes one call, and again while it fails transiently, waiting what the service
// asked for (Retry-After, capped) or 1s, 2s, 4s.
func retry[T any](ctx context.Context, clock rotation.Clock, f func() (T, error)) (T, error) {
	var v T
	var err error
	for attempt := 1; ; attempt++ {
		v, err = f()
		var perm interface{ Permanent() bool }
		if err == nil || attempt == maxAttempts || (errors.As(err, &perm) && perm.Permanent()) || ctx.Err() != nil {
			return v, err
		}
		wait := time.Second << (attempt - 1)
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			wait = min(ra.RetryAfter(), maxWait)
		}
		if serr := clock.Sleep(ctx, wait); serr != nil {
			return v, err
		}
	}
}

// signInName is the sign-in name in "Microsoft.IdentityModel.Claims.ClaimsIdentity;
// <tenant>\<name>", or the descriptor itself.
func signInName(descriptor string) string {
	if i := strings.LastIndexByte(descriptor, '\\'); i >= 0 {
		return descriptor[i+1:]
	}
	return descriptor
}

func newDiscoverCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "discover [-o table|json]",
		Short: "Find which unmanaged secrets of the vault hold Azure DevOps PATs, whose, and how to adopt them",
		Long: "Reads every secret patrol does not manage. A value with the exact shape of an Azure DevOps PAT\n" +
			"(84 letters and digits with AZDO at 76-79, or 52 lower-case base32 characters) is tried as a PAT\n" +
			"against connectionData in each PATROL_ALLOWED_ORGS organization; any other value is never sent.\n" +
			"No value is stored or printed. Progress goes to stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return UsageError(fmt.Errorf("--output %q: want table or json", output))
			}
			s, err := services(cmd, readsKeyVault)
			if err != nil {
				return err
			}
			defer closeServices(cmd, s)
			if len(s.Defaults.Bounds.Orgs) == 0 {
				return errors.New("discover: PATROL_ALLOWED_ORGS is empty: no organization to try PATs in")
			}
			d := discovery{vault: s.Store, pats: s.DevOps, orgs: slices.Sorted(slices.Values(s.Defaults.Bounds.Orgs)), clock: s.Clock, progress: cmd.ErrOrStderr()}
			found, walked, err := d.run(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				if found == nil {
					found = []Discovered{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(found)
			}
			return writeDiscovered(cmd.OutOrStdout(), found, walked)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return OperatorCommand(cmd)
}

func writeDiscovered(w io.Writer, found []Discovered, walked int) error {
	fmt.Fprintf(w, "%d of %d unmanaged secret(s) hold an Azure DevOps PAT.\n", len(found), walked)
	if len(found) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECRET\tFORMAT\tORG\tUSER\tEXPIRES\tADOPT")
	for _, f := range found {
		for i, o := range f.Orgs {
			adopt := f.Adopt
			if i > 0 {
				adopt = "(also works here)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Secret, f.Format, o.Org, dash(o.User), day(f.Expires), adopt)
		}
	}
	return tw.Flush()
}
