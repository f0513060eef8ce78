// Command echohandler is a scripted custom handler for devhost's tests: it listens
// where the host tells it, records every invocation (headers and body) as a JSON line
// in $ECHO_RECORD, and answers according to markers found in the request body:
//
//	fail-always        answer 500
//	fail-until-N       answer 500 while Metadata.DeliveryCount < N
//	bad-json           answer 200 with a body that is not JSON
//	crash-now          exit(3) without answering
//	sleep-ms-N         wait N ms before answering
//	self-deadletter    dead-letter the message by its Metadata.LockToken on queue
//	                   pat-revocations through the management link (as patrol does
//	                   for a permanently bad message), then answer 200
//
// Otherwise it answers 200 with an http output "res" echoing the request, plus outputs
// "outMsg" (a base64-looking string) and "outMany" (an array) for output-binding tests. GET /env returns
// the FUNCTIONS_*, IDENTITY_* and ECHO_* variables; GET /stats the most invocations
// answered at once; GET /msi gets a token with azidentity's ManagedIdentityCredential.
// ECHO_EXIT=1 makes it exit at once, ECHO_NO_LISTEN=1 makes it never listen.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
)

var (
	mu     sync.Mutex
	record *os.File

	inFlight, maxInFlight int // invocations being answered now, and the most at once
)

type entry struct {
	Function     string          `json:"function"`
	InvocationID string          `json:"invocationId"`
	HostVersion  string          `json:"hostVersion"`
	UserAgent    string          `json:"userAgent"`
	ContentType  string          `json:"contentType"`
	Body         json.RawMessage `json:"body"`
	Event        string          `json:"event,omitempty"`
}

func write(e entry) {
	mu.Lock()
	defer mu.Unlock()
	if record == nil {
		return
	}
	b, _ := json.Marshal(e)
	_, _ = record.Write(append(b, '\n'))
}

var (
	failUntilRE = regexp.MustCompile(`fail-until-(\d+)`)
	sleepRE     = regexp.MustCompile(`sleep-ms-(\d+)`)
)

func main() {
	if os.Getenv("ECHO_EXIT") == "1" {
		fmt.Fprintln(os.Stderr, "echohandler: exiting as asked")
		os.Exit(4)
	}
	if p := os.Getenv("ECHO_RECORD"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		record = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if os.Getenv("ECHO_NO_LISTEN") == "1" {
		<-ctx.Done()
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("echohandler: listening on", ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(serve)}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	write(entry{Event: "terminated"})
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

func serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		w.WriteHeader(http.StatusNotFound) // any answer means ready
		return
	case r.Method == http.MethodGet && r.URL.Path == "/env":
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "FUNCTIONS_") || strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "ECHO_") || strings.HasPrefix(k, "SETTING_") {
				env[k] = v
			}
		}
		wd, _ := os.Getwd()
		env["PWD"] = wd
		_ = json.NewEncoder(w).Encode(env)
		return
	case r.Method == http.MethodGet && r.URL.Path == "/stats":
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]int{"maxInFlight": maxInFlight})
		return
	case r.Method == http.MethodGet && r.URL.Path == "/msi":
		// What patrol does in Azure: ManagedIdentityCredential, which picks the App
		// Service source from IDENTITY_ENDPOINT and IDENTITY_HEADER.
		cred, err := azidentity.NewManagedIdentityCredential(nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		tok, err := cred.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "token for %d characters, expires %s", len(tok.Token), tok.ExpiresOn.UTC().Format(time.RFC3339))
		return
	case r.Method != http.MethodPost:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	mu.Lock()
	inFlight++
	maxInFlight = max(maxInFlight, inFlight)
	mu.Unlock()
	defer func() {
		mu.Lock()
		inFlight--
		mu.Unlock()
	}()
	body, _ := io.ReadAll(r.Body)
	fn := strings.TrimPrefix(r.URL.Path, "/")
	write(entry{
		Function: fn, InvocationID: r.Header.Get("X-Azure-Functions-InvocationId"),
		HostVersion: r.Header.Get("X-Azure-Functions-HostVersion"), UserAgent: r.Header.Get("User-Agent"),
		ContentType: r.Header.Get("Content-Type"), Body: json.RawMessage(body),
	})
	s := string(body)
	if m := sleepRE.FindStringSubmatch(s); m != nil {
		ms, _ := strconv.Atoi(m[1])
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if strings.Contains(s, "self-deadletter") {
		if err := deadLetter(r.Context(), body); err != nil {
			http.Error(w, "self-deadletter: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	switch {
	case strings.Contains(s, "crash-now"):
		os.Exit(3)
	case strings.Contains(s, "fail-always"):
		http.Error(w, `{"Logs":["ignored on failure"]}`, http.StatusInternalServerError)
		return
	case strings.Contains(s, "bad-json"):
		fmt.Fprint(w, "this is not json")
		return
	}
	if m := failUntilRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		var inv struct {
			Metadata struct {
				DeliveryCount string
			}
		}
		_ = json.Unmarshal(body, &inv)
		dc, _ := strconv.Atoi(inv.Metadata.DeliveryCount)
		if dc < n {
			http.Error(w, "failing until delivery "+m[1], http.StatusServiceUnavailable)
			return
		}
	}
	res := map[string]any{
		"Outputs": map[string]any{
			"res": map[string]any{
				"statusCode": "201",
				"body":       s,
				"headers":    map[string]string{"Content-Type": "application/json", "X-Echo-Function": fn},
			},
			// For output bindings named so: a string that is valid base64 (which the host
			// decodes) and a collector array.
			"outMsg":  "dGVzdA==",
			"outMany": []any{map[string]string{"kind": "a"}, "plain text"},
		},
		"Logs":        []string{"echo " + fn},
		"ReturnValue": nil,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// deadLetter settles the invocation's message itself, by lock token, the way a handler
// must not (the host owns the lock; patrol once did this): devhost's own completion then
// fails, and it must say so.
func deadLetter(ctx context.Context, body []byte) error {
	var inv struct {
		Metadata struct {
			LockToken string
		}
	}
	if err := json.Unmarshal(body, &inv); err != nil {
		return err
	}
	tok, err := uuid.Parse(strings.Trim(inv.Metadata.LockToken, `"`))
	if err != nil {
		return err
	}
	c, err := azservicebus.NewClientFromConnectionString(os.Getenv("ServiceBusConnection"), nil)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	rcv, err := c.NewReceiverForQueue("pat-revocations", nil)
	if err != nil {
		return err
	}
	reason := "bad message"
	return rcv.DeadLetterMessage(ctx, &azservicebus.ReceivedMessage{LockToken: tok}, &azservicebus.DeadLetterOptions{Reason: &reason})
}
