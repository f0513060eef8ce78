package handlers

// Trigger binding types as function.json names them.
const (
	BindingEventGridTrigger  = "eventGridTrigger"
	BindingServiceBusTrigger = "serviceBusTrigger"
	BindingHTTPTrigger       = "httpTrigger"
	BindingTimerTrigger      = "timerTrigger"
)

// Queue names (docs/architecture.md).
const (
	QueueOffboarding = "hr-offboarding"
	QueueRotations   = "pat-rotations"
	QueueRevocations = "pat-revocations"
)

// Function describes one function as the handler expects functions/<Name>/function.json
// to declare it; a test keeps the two in agreement.
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
}

// Functions returns every function patrol serves.
func Functions() []Function {
	return []Function{
		{Name: "KeyVaultEvents", Trigger: BindingEventGridTrigger, Binding: "event"},
		{Name: "Offboarding", Trigger: BindingServiceBusTrigger, Binding: "msg", Queue: QueueOffboarding},
		{Name: "Rotate", Trigger: BindingServiceBusTrigger, Binding: "msg", Queue: QueueRotations, Sessions: true},
		{Name: "Revoke", Trigger: BindingServiceBusTrigger, Binding: "msg", Queue: QueueRevocations},
		{Name: "RotateNow", Trigger: BindingHTTPTrigger, Binding: "req", Methods: []string{"post"}, Route: "rotate/{secret}", Output: "res"},
		{Name: "SecretStatus", Trigger: BindingHTTPTrigger, Binding: "req", Methods: []string{"get"}, Route: "status/{secret?}", Output: "res"},
		{Name: "Sweep", Trigger: BindingTimerTrigger, Binding: "timer", Schedule: "%PATROL_SWEEP_SCHEDULE%"},
	}
}

func lookupFunction(name string) (Function, bool) {
	for _, f := range Functions() {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}
