package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patrol-dev/patrol/internal/rules"
)

const (
	testVault  = "https://demo.vault.localhost:8443"
	testTenant = "11111111-2222-3333-4444-555555555555"
	testClient = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	// A fake key; the tests check it never appears in an error.
	testKey  = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ="
	testConn = "Endpoint=sb://localhost:5672/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + testKey
)

func minimal() map[string]string {
	return map[string]string{
		SettingKeyVaultURL:          testVault,
		SettingServiceBusConnection: testConn,
		SettingTenantID:             testTenant,
		SettingClientID:             testClient,
	}
}

func with(edit map[string]string) func(string) string {
	env := minimal()
	for k, v := range edit {
		if v == "<unset>" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

func TestLoadAcceptsValidSettings(t *testing.T) {
	tests := map[string]struct {
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		"the minimal settings get the documented defaults": {
			check: func(t *testing.T, c Config) {
				if c.Grace != 72*time.Hour || c.RenewBefore != 30*rules.Day || c.Lifetime != 90*rules.Day {
					t.Errorf("durations = %v %v %v, want 72h 30d 90d", c.Grace, c.RenewBefore, c.Lifetime)
				}
				if c.SweepSchedule != "0 0 */6 * * *" || c.AllowROPC {
					t.Errorf("schedule %q allowROPC %v, want defaults", c.SweepSchedule, c.AllowROPC)
				}
				if c.OffboardingUnmanaged != UnmanagedReport {
					t.Errorf("offboarding unmanaged = %q, want %q", c.OffboardingUnmanaged, UnmanagedReport)
				}
			},
		},
		"durations in whole days and Go syntax are read": {
			env: map[string]string{SettingGrace: "90m", SettingRenewBefore: "7d", SettingLifetime: "720h"},
			check: func(t *testing.T, c Config) {
				if c.Grace != 90*time.Minute || c.RenewBefore != 7*rules.Day || c.Lifetime != 30*rules.Day {
					t.Errorf("durations = %v %v %v", c.Grace, c.RenewBefore, c.Lifetime)
				}
			},
		},
		"an identity-based Service Bus namespace replaces the connection string": {
			env: map[string]string{SettingServiceBusConnection: "<unset>", SettingServiceBusNamespace: "patrol.servicebus.windows.net"},
			check: func(t *testing.T, c Config) {
				if c.ServiceBusNamespace != "patrol.servicebus.windows.net" || c.ServiceBusConnection != "" {
					t.Errorf("service bus = %q / %q", c.ServiceBusNamespace, RedactConnectionString(c.ServiceBusConnection))
				}
			},
		},
		"the development emulator connection string needs no key": {
			env: map[string]string{SettingServiceBusConnection: "Endpoint=sb://localhost:5672;UseDevelopmentEmulator=true"},
		},
		"optional settings are kept": {
			env: map[string]string{
				SettingDefaultServiceAccount: "svc-build@contoso.com", SettingAllowROPC: "true",
				SettingAzureClientID: testClient, SettingAuthorityHost: "https://localhost:9443",
				SettingDevOpsURL: "https://localhost:9444", SettingCAFile: "/tmp/ca.pem",
				SettingSweepSchedule: "0 */30 * * * *", SettingTenantID: "contoso.onmicrosoft.com",
				SettingOffboardingUnmanaged: "Revoke-Now",
			},
			check: func(t *testing.T, c Config) {
				if !c.AllowROPC || c.DefaultServiceAccount != "svc-build@contoso.com" || c.DevOpsURL != "https://localhost:9444" || c.SweepSchedule != "0 */30 * * * *" || c.OffboardingUnmanaged != UnmanagedRevokeNow {
					t.Errorf("config = %+v", c.LogValue())
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Load(with(tc.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestLoadNamesTheBadSetting(t *testing.T) {
	tests := map[string]struct {
		env  map[string]string
		want []string // substrings naming the setting and the value
	}{
		"a missing vault URL is named": {
			env: map[string]string{SettingKeyVaultURL: "<unset>"}, want: []string{SettingKeyVaultURL, "required"}},
		"an http vault URL is refused": {
			env: map[string]string{SettingKeyVaultURL: "http://demo.vault.localhost"}, want: []string{SettingKeyVaultURL, `"http://demo.vault.localhost"`, "https"}},
		"neither Service Bus setting is an error": {
			env: map[string]string{SettingServiceBusConnection: "<unset>"}, want: []string{SettingServiceBusConnection, SettingServiceBusNamespace}},
		"both Service Bus settings are an error": {
			env: map[string]string{SettingServiceBusNamespace: "x.servicebus.windows.net"}, want: []string{"set only one"}},
		"a connection string without a key is named but its text redacted": {
			env:  map[string]string{SettingServiceBusConnection: "Endpoint=sb://x/;SharedAccessKey=" + testKey},
			want: []string{SettingServiceBusConnection, "SharedAccessKey=REDACTED", "SharedAccessKeyName"}},
		"a namespace with a scheme is refused": {
			env: map[string]string{SettingServiceBusConnection: "<unset>", SettingServiceBusNamespace: "sb://x.servicebus.windows.net/"}, want: []string{SettingServiceBusNamespace, `"sb://x.servicebus.windows.net/"`}},
		"a client id that is not a GUID is named": {
			env: map[string]string{SettingClientID: "patrol-app"}, want: []string{SettingClientID, `"patrol-app"`}},
		"a tenant that is neither GUID nor domain is named": {
			env: map[string]string{SettingTenantID: "not a tenant"}, want: []string{SettingTenantID, `"not a tenant"`}},
		"a default service account that is not a UPN is named": {
			env: map[string]string{SettingDefaultServiceAccount: "svc-build"}, want: []string{SettingDefaultServiceAccount, `"svc-build"`}},
		"a duration in weeks is refused": {
			env: map[string]string{SettingGrace: "2w"}, want: []string{SettingGrace, `"2w"`, "14d"}},
		"a negative duration is refused": {
			env: map[string]string{SettingRenewBefore: "-1h"}, want: []string{SettingRenewBefore, "negative"}},
		"a lifetime over a year is refused": {
			env: map[string]string{SettingLifetime: "400d"}, want: []string{SettingLifetime, `"400d"`, "365d"}},
		"an unknown way of handling a leaver's unmanaged PATs is named": {
			env: map[string]string{SettingOffboardingUnmanaged: "revoke-later"}, want: []string{SettingOffboardingUnmanaged, `"revoke-later"`, UnmanagedRevokeAfterGrace}},
		"a non-boolean ROPC switch is named": {
			env: map[string]string{SettingAllowROPC: "yes please"}, want: []string{SettingAllowROPC, `"yes please"`}},
		"a five-field cron expression is refused": {
			env: map[string]string{SettingSweepSchedule: "0 */6 * * *"}, want: []string{SettingSweepSchedule, "6 fields"}},
		"a malformed cron expression is refused": {
			env: map[string]string{SettingSweepSchedule: "0 0 */6 * * funday"}, want: []string{SettingSweepSchedule, "NCRONTAB"}},
		"a DevOps URL with a query is refused": {
			env: map[string]string{SettingDevOpsURL: "https://localhost:1/?x=1"}, want: []string{SettingDevOpsURL}},
		"every bad setting is reported at once": {
			env: map[string]string{SettingTenantID: "<unset>", SettingClientID: "<unset>"}, want: []string{SettingTenantID, SettingClientID}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(with(tc.env))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if strings.Contains(msg, testKey) {
				t.Error("error contains the Service Bus key")
			}
			var se *SettingError
			if !errors.As(err, &se) {
				t.Errorf("error is %T, want it to wrap *SettingError", err)
			}
		})
	}
}

func TestConfigLogValueLeavesOutTheKey(t *testing.T) {
	c, err := Load(with(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.LogValue().String(); strings.Contains(s, testKey) || !strings.Contains(s, "REDACTED") {
		t.Errorf("LogValue leaks or does not redact the key")
	}
}

func TestNamesListsEverySettingOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Names() {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
	if len(seen) != 23 {
		t.Errorf("%d settings, want the 23 of docs/architecture.md", len(seen))
	}
}

func TestParseEnv(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		"plain pairs, comments and blank lines are read": {
			in:   "# settings\n\nA=1\nB = two \n",
			want: map[string]string{"A": "1", "B": "two"},
		},
		"export prefixes are ignored": {
			in: "export A=1\nexport\tB=2\n", want: map[string]string{"A": "1", "B": "2"},
		},
		"a trailing comment after whitespace is dropped but a hash inside a word is kept": {
			in: "A=x # note\nB=abc#def\n", want: map[string]string{"A": "x", "B": "abc#def"},
		},
		"double quotes keep spaces and expand escapes": {
			in: `A="  x\ty \"q\" \\ \n"` + "\n", want: map[string]string{"A": "  x\ty \"q\" \\ \n"},
		},
		"single quotes are literal": {
			in: `A='a\nb # not a comment'`, want: map[string]string{"A": `a\nb # not a comment`},
		},
		"a connection string with '=' and ';' survives": {
			in:   "ServiceBusConnection=Endpoint=sb://localhost/;SharedAccessKey=abc=\n",
			want: map[string]string{"ServiceBusConnection": "Endpoint=sb://localhost/;SharedAccessKey=abc="},
		},
		"a later line wins": {
			in: "A=1\nA=2\n", want: map[string]string{"A": "2"},
		},
		"a byte order mark and CRLF line ends are tolerated": {
			in: "\uFEFFA=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"},
		},
		"a line without '=' is an error naming the line": {
			in: "A=1\nsecretvalue\n", wantErr: "line 2",
		},
		"an unterminated quote is an error naming the key": {
			in: "TOKEN=\"abc\n", wantErr: "line 1: value of TOKEN: unterminated",
		},
		"text after a closing quote is an error": {
			in: "A='x' y\n", wantErr: "after the closing quote",
		},
		"an invalid name is an error": {
			in: "1A=x\n", wantErr: "invalid setting name",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseEnv(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseEnv error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnv: %v", err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("ParseEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEnvErrorsNeverEchoValues(t *testing.T) {
	const value = "sup3r-secret-value"
	for _, in := range []string{"A=\"" + value, "A='" + value, value, "A='x' " + value, value + "!=x"} {
		_, err := ParseEnv(strings.NewReader(in))
		if err == nil {
			t.Errorf("ParseEnv accepted a malformed line")
			continue
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("error echoes the value: %v", err)
		}
	}
}

func TestReadEnvFileLayersOverTheEnvironment(t *testing.T) {
	path := t.TempDir() + "/patrol.env"
	if err := writeFile(path, "PATROL_GRACE=1h\n"); err != nil {
		t.Fatal(err)
	}
	file, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{SettingGrace: "2h", SettingLifetime: "30d"}
	get := WithEnvFile(file, func(k string) string { return env[k] })
	if get(SettingGrace) != "1h" || get(SettingLifetime) != "30d" {
		t.Errorf("grace %q lifetime %q, want the file's 1h and the environment's 30d", get(SettingGrace), get(SettingLifetime))
	}
	if _, err := ReadEnvFile(path + ".missing"); err == nil {
		t.Error("reading a missing file succeeded")
	}
}

func FuzzParseEnv(f *testing.F) {
	for _, seed := range []string{
		"A=1\n", "export B='x y'\n", `C="a\"b\n"` + "\n", "# c\nD=e # f\n", "E=\"unterminated\n", "=x\n", "\uFEFFF=1\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseEnv(strings.NewReader(in))
		if err != nil {
			return
		}
		for k := range m {
			if !envKey.MatchString(k) {
				t.Errorf("accepted invalid key %q", k)
			}
		}
	})
}

func TestAMalformedConnectionStringNeverReachesAMessageUnredacted(t *testing.T) {
	const key = "c2VjcmV0LWtleS12YWx1ZQ=="
	cases := map[string]string{
		"a comma instead of a semicolon runs the key into the Endpoint":   "Endpoint=sb://x.servicebus.windows.net/,SharedAccessKeyName=k,SharedAccessKey=" + key,
		"a newline instead of a semicolon":                                "Endpoint=sb://x.servicebus.windows.net/\nSharedAccessKey=" + key,
		"a key pasted without its name":                                   "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;" + key,
		"a misspelt key name":                                             "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;Shared Access Key=" + key,
		"a key in the key name's place":                                   "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=" + key,
		"a signature with its own '=' signs":                              "Endpoint=sb://x/;SharedAccessSignature=SharedAccessSignature sr=x&sig=" + key,
		"both Service Bus settings, the string malformed":                 "Endpoint=sb://x/,SharedAccessKey=" + key,
		"credentials in the Endpoint URL":                                 "Endpoint=sb://k:" + key + "@x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=" + key,
		"an emulator string whose key ran into the emulator flag's value": "Endpoint=sb://localhost/;UseDevelopmentEmulator=true," + key,
	}
	for name, cs := range cases {
		t.Run(name, func(t *testing.T) {
			if got := RedactConnectionString(cs); strings.Contains(got, key) || strings.Contains(got, "c2VjcmV0") {
				t.Errorf("RedactConnectionString kept the key: %q", got)
			}
			env := minimal()
			env[SettingServiceBusConnection] = cs
			if name == "both Service Bus settings, the string malformed" {
				env[SettingServiceBusNamespace] = "x.servicebus.windows.net"
			}
			_, err := Load(func(k string) string { return env[k] })
			if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("Load's error carries the key: %v", err)
			}
			if got := fmt.Sprint(slog.GroupValue(Config{ServiceBusConnection: cs}.LogValue().Group()...)); strings.Contains(got, "c2VjcmV0") {
				t.Errorf("the logged settings carry the key: %s", got)
			}
		})
	}
	if got := RedactConnectionString(testConn); !strings.Contains(got, "Endpoint=sb://localhost:5672/") || !strings.Contains(got, "SharedAccessKeyName=RootManageSharedAccessKey") {
		t.Errorf("a well-formed string lost what locates the namespace: %q", got)
	}
}

// dnsNameOracle is the rule isDNSName hand-writes, as the regexp it replaced.
var dnsNameOracle = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

func FuzzIsDNSNameAgreesWithItsRegexp(f *testing.F) {
	for _, s := range []string{"patrol.servicebus.windows.net", "localhost", "a.b", "-a.b", "a-.b", "a..b", ".a.b", "a.b.", strings.Repeat("a", 63) + ".b", strings.Repeat("a", 64) + ".b", strings.Repeat("a.", 127) + "b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDNSName(s), len(s) <= 253 && dnsNameOracle.MatchString(s); got != want {
			t.Errorf("isDNSName(%q) = %v, regexp says %v", s, got, want)
		}
	})
}

func TestLoadForAsksOnlyForWhatTheCommandNeeds(t *testing.T) {
	noBus := with(map[string]string{SettingServiceBusConnection: "<unset>"})
	for name, tc := range map[string]struct {
		getenv  func(string) string
		needs   Needs
		wantErr string // "" = loads
	}{
		"a command that sends nothing starts without a Service Bus setting": {
			getenv: noBus, needs: Needs{}},
		"a command that sends needs one": {
			getenv: noBus, needs: Needs{ServiceBus: true}, wantErr: SettingServiceBusConnection},
		"a Service Bus setting that is present is still checked when not needed": {
			getenv: with(map[string]string{SettingServiceBusNamespace: "sb://x/"}), needs: Needs{}, wantErr: "set only one"},
		"the vault is needed by every command": {
			getenv: with(map[string]string{SettingKeyVaultURL: "<unset>", SettingServiceBusConnection: "<unset>"}), needs: Needs{}, wantErr: SettingKeyVaultURL},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := LoadFor(tc.getenv, tc.needs)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("LoadFor: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("LoadFor: error %v, want one naming %q", err, tc.wantErr)
			case tc.wantErr == "" && (c.ServiceBusConnection != "" || c.ServiceBusNamespace != ""):
				t.Errorf("Service Bus = %q / %q, want none", c.ServiceBusConnection, c.ServiceBusNamespace)
			}
		})
	}
	if _, err := Load(noBus); err == nil || !strings.Contains(err.Error(), SettingServiceBusConnection) {
		t.Errorf("Load without Service Bus: %v, want it required (patrol serve)", err)
	}
}

// App Service and Functions re-fetch a Key Vault reference every 24 hours
// (docs/consumers.md): a consumer that refreshes just before a rotation holds the
// replaced PAT for up to a day, so the default grace must outlast that, and the
// default bound must admit the default.
func TestTheDefaultGraceOutlastsAKeyVaultReferenceRefresh(t *testing.T) {
	const appServiceRefresh = 24 * time.Hour
	if DefaultGrace <= appServiceRefresh {
		t.Errorf("DefaultGrace %v does not outlast the 24 h Key Vault reference refresh", DefaultGrace)
	}
	if DefaultGrace > DefaultMaxGrace {
		t.Errorf("DefaultGrace %v exceeds DefaultMaxGrace %v", DefaultGrace, DefaultMaxGrace)
	}
	c, err := Load(with(nil))
	if err != nil || c.Grace != DefaultGrace || c.MaxGrace != DefaultMaxGrace {
		t.Fatalf("Load with no grace settings: grace %v, max %v, %v", c.Grace, c.MaxGrace, err)
	}
}
