package settings

import (
	"regexp"
	"strings"
	"testing"

	sbemu "github.com/patrol-dev/patrol/internal/local/emulator/servicebus"
	"github.com/patrol-dev/patrol/internal/local/stack"
)

// serviceBusRoleClaims are the built-in Service Bus data roles by definition id, as the
// claims they carry (learn.microsoft.com, "Azure built-in roles for Integration").
var serviceBusRoleClaims = map[string]sbemu.Claim{
	"69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": sbemu.Send,   // Azure Service Bus Data Sender
	"4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": sbemu.Listen, // Azure Service Bus Data Receiver
	"090c5cfd-751d-490a-894a-3ce6f1109419": sbemu.Manage, // Azure Service Bus Data Owner
}

var bicepStringVar = regexp.MustCompile(`(?m)^var\s+(\w+)\s*=\s*'([^']*)'`)

// bicepServiceBusRights reads the Service Bus role assignments of one principal
// parameter out of servicebus.bicep, as the emulator's Rights: entity name ("" for the
// namespace) → claims.
func bicepServiceBusRights(t *testing.T, src, principalParam string) sbemu.Rights {
	t.Helper()
	vars := map[string]string{}
	for _, m := range bicepStringVar.FindAllStringSubmatch(src, -1) {
		vars[m[1]] = m[2]
	}
	entities := map[string]string{} // resource symbol → entity name
	for _, r := range bicepResources("servicebus.bicep", src) {
		switch r.typ {
		case "Microsoft.ServiceBus/namespaces":
			entities[r.symbol] = ""
		case "Microsoft.ServiceBus/namespaces/queues", "Microsoft.ServiceBus/namespaces/topics":
			name, _ := prop(bicepProps(r.body), "name")
			if n, ok := unquote(name); ok {
				entities[r.symbol] = n
			}
		}
	}
	rights := sbemu.Rights{}
	for _, r := range bicepResources("servicebus.bicep", src) {
		if r.typ != "Microsoft.Authorization/roleAssignments" {
			continue
		}
		props := bicepProps(r.body)
		inner, _ := prop(props, "properties")
		pp := bicepProps(inner)
		if who, _ := prop(pp, "principalId"); who != principalParam {
			continue
		}
		scope, _ := prop(props, "scope")
		entity, ok := entities[scope]
		if !ok {
			t.Errorf("servicebus.bicep: %s is scoped to %q, not a namespace, queue or topic of this file", r.symbol, scope)
			continue
		}
		def, _ := prop(pp, "roleDefinitionId")
		var claim sbemu.Claim
		for name, id := range vars {
			if strings.Contains(def, name) {
				claim |= serviceBusRoleClaims[id]
			}
		}
		if claim == 0 {
			t.Errorf("servicebus.bicep: %s assigns %s, not a Service Bus data role this test knows", r.symbol, def)
			continue
		}
		rights[entity] |= claim
	}
	return rights
}

// The operator's commands run in the operator's process with the operator's identity:
// what they send and receive must be what infra/ lets the operator do, and the local
// stack (whose Service Bus emulator enforces OperatorRights) must let the operator do
// exactly that, so the end-to-end tests of those commands find a missing role.
func TestTheLocalOperatorHasTheServiceBusRolesBicepGrants(t *testing.T) {
	files := bicepFiles(t, repoRoot(t))
	src, ok := files["infra/modules/servicebus.bicep"]
	if !ok {
		t.Fatal("infra/modules/servicebus.bicep is missing")
	}
	bicep := bicepServiceBusRights(t, src, "operatorPrincipalId")
	if len(bicep) == 0 {
		t.Fatal("servicebus.bicep assigns the operator no Service Bus role; the reader found nothing")
	}
	local := stack.OperatorRights
	for _, entity := range sortedKeys(bicep) {
		if local[entity] != bicep[entity] {
			t.Errorf("%q: Bicep grants the operator %s, the local operator (stack.OperatorRights) has %s", entity, bicep[entity], local[entity])
		}
	}
	for _, entity := range sortedKeys(local) {
		if _, ok := bicep[entity]; !ok {
			t.Errorf("%q: the local operator has %s, Bicep grants the operator nothing there", entity, local[entity])
		}
	}
}

func TestTheRoleReaderSeesEachAssignment(t *testing.T) {
	src := `
var serviceBusDataSenderRoleId = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataReceiverRoleId = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
resource ns 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
}
resource q 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: ns
  name: 'q1'
}
resource tp 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: ns
  name: 't1'
}
resource a 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(op)) {
  name: guid(q.id, op, serviceBusDataSenderRoleId)
  scope: q
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: op
  }
}
resource b 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: tp
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiverRoleId)
    principalId: op
  }
}
resource c 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: tp
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSenderRoleId)
    principalId: app
  }
}
`
	got := bicepServiceBusRights(t, src, "op")
	if len(got) != 2 || got["q1"] != sbemu.Send || got["t1"] != sbemu.Listen {
		t.Fatalf("rights = %v, want q1: Send, t1: Listen (and nothing of the app's)", got)
	}
}
