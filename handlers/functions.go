package handlers

import "context"

// Trigger binding types as function.json names them.
const (
	BindingEventGridTrigger  = "eventGridTrigger"
	BindingServiceBusTrigger = "serviceBusTrigger"
	BindingHTTPTrigger       = "httpTrigger"
	BindingTimerTrigger      = "timerTrigger"
)

// Function describes one function as the handler expects functions/<Name>/function.json
// to declare it (a test keeps the two in agreement), and carries its own
// decode-and-invoke: each function lives in its own file (rotate.go, …), so a new
// function cannot fall through to another's App method.
type Function struct {
	Name     string
	Trigger  string // one of the Binding*Trigger constants
	Binding  string // the trigger binding's name: the key in Data
	Queue    string // Service Bus queue (serviceBusTrigger only)
	Sessions bool   // the queue requires sessions
	Methods  []string
	Route    string
	Output   string // HTTP output binding name (httpTrigger only)
	Schedule string // timer schedule expression (timerTrigger only)

	// invoke decodes the invocation for this function, calls the App and answers.
	invoke func(ctx context.Context, c call) *response
}

// functions is the function table: every function patrol serves.
var functions = []Function{
	keyVaultEventsFunction,
	offboardingFunction,
	rotateFunction,
	revokeFunction,
	rotateNowFunction,
	secretStatusFunction,
	sweepFunction,
	offboardingReportFunction,
}

// Functions returns every function patrol serves.
func Functions() []Function { return append([]Function(nil), functions...) }

func lookupFunction(name string) (Function, bool) {
	for _, f := range functions {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}
