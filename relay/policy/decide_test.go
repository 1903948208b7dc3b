package policy_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// read is a valid read request of tenant acme by alice, a campaign manager.
func read() policy.Request {
	return policy.Request{
		Tenant: "acme", UserID: "alice", Email: "alice@acme.example", Roles: []string{"campaign-manager"},
		TargetSystem: "sharepoint", Operation: "search_documents", Access: "read",
		Resource: map[string]string{"site": "marketing", "id": "doc-1"},
	}
}

// with returns read() changed by f.
func with(f func(*policy.Request)) policy.Request {
	r := read()
	f(&r)
	return r
}

func TestDecide(t *testing.T) {
	const (
		permitRole = `@id("cm-read") permit (principal in Role::"campaign-manager", action in Action::"read", resource == System::"sharepoint");`
		permitUser = `@id("bob-search") permit (principal == User::"bob", action == Action::"search_documents", resource);`
		permitAll  = `@id("all") permit (principal, action, resource);`
	)
	tests := []struct {
		name         string
		files        map[string]string
		req          policy.Request
		wantAllow    bool
		wantPolicies []string
		wantReason   string
	}{
		{
			name:  "allow by role",
			files: map[string]string{"acme/main.cedar": permitRole},
			req:   read(), wantAllow: true, wantPolicies: []string{"cm-read"}, wantReason: "allowed by policy cm-read",
		},
		{
			name:       "role missing",
			files:      map[string]string{"acme/main.cedar": permitRole},
			req:        with(func(r *policy.Request) { r.Roles = []string{"viewer"} }),
			wantReason: "denied: no policy permits alice to search_documents on sharepoint (default deny)",
		},
		{
			name:      "allow by user",
			files:     map[string]string{"acme/main.cedar": permitUser},
			req:       with(func(r *policy.Request) { r.UserID, r.Roles = "bob", nil }),
			wantAllow: true, wantPolicies: []string{"bob-search"}, wantReason: "allowed by policy bob-search",
		},
		{
			name:  "other user",
			files: map[string]string{"acme/main.cedar": permitUser},
			req:   read(), wantReason: "(default deny)",
		},
		{
			name:       "default deny with no policies",
			files:      map[string]string{"acme/empty.cedar": "// nothing yet\n"},
			req:        read(),
			wantReason: "denied: no policy permits alice to search_documents on sharepoint (default deny)",
		},
		{
			name: "forbid overrides permit and is named",
			files: map[string]string{"acme/main.cedar": permitAll + "\n" +
				`@id("no-hr") forbid (principal, action, resource) when { resource has site && resource.site == "hr" };`},
			req:          with(func(r *policy.Request) { r.Resource["site"] = "hr" }),
			wantPolicies: []string{"no-hr"}, wantReason: "denied by policy no-hr",
		},
		{
			name: "forbid not matching",
			files: map[string]string{"acme/main.cedar": permitAll + "\n" +
				`@id("no-hr") forbid (principal, action, resource) when { resource has site && resource.site == "hr" };`},
			req: read(), wantAllow: true, wantPolicies: []string{"all"}, wantReason: "allowed by policy all",
		},
		{
			name:  "several permits are all named",
			files: map[string]string{"acme/main.cedar": permitAll + "\n" + permitRole},
			req:   read(), wantAllow: true, wantPolicies: []string{"all", "cm-read"}, wantReason: "allowed by policies all, cm-read",
		},
		{
			name: "ids without @id are file and index",
			files: map[string]string{
				"acme/a.cedar": `permit (principal, action == Action::"nothing", resource);` + "\n" +
					`permit (principal in Role::"campaign-manager", action, resource);`,
				"acme/b.cedar": `forbid (principal, action, resource) when { context.pii };`,
			},
			req: read(), wantAllow: true, wantPolicies: []string{"a.cedar#1"}, wantReason: "allowed by policy a.cedar#1",
		},
		{
			name: "forbid without @id is file and index",
			files: map[string]string{
				"acme/a.cedar": `permit (principal, action, resource);`,
				"acme/b.cedar": `forbid (principal, action, resource) when { context.pii };`,
			},
			req:          with(func(r *policy.Request) { r.PII = true }),
			wantPolicies: []string{"b.cedar#0"}, wantReason: "denied by policy b.cedar#0",
		},
		{
			name:       "read group does not grant write",
			files:      map[string]string{"acme/main.cedar": permitRole},
			req:        with(func(r *policy.Request) { r.Operation, r.Access = "upload_document", "write" }),
			wantReason: "denied: no policy permits alice to upload_document on sharepoint (default deny)",
		},
		{
			name:      "write group",
			files:     map[string]string{"acme/main.cedar": `@id("w") permit (principal, action in Action::"write", resource);`},
			req:       with(func(r *policy.Request) { r.Operation, r.Access = "upload_document", "write" }),
			wantAllow: true, wantPolicies: []string{"w"}, wantReason: "allowed by policy w",
		},
		{
			name:      "operation named like its group",
			files:     map[string]string{"acme/main.cedar": `@id("r") permit (principal, action in Action::"read", resource);`},
			req:       with(func(r *policy.Request) { r.Operation = "read" }),
			wantAllow: true, wantPolicies: []string{"r"}, wantReason: "allowed by policy r",
		},
		{
			name: "pii forbidden without data steward",
			files: map[string]string{"acme/main.cedar": permitAll + "\n" +
				`@id("pii") forbid (principal, action, resource) when { context.pii } unless { principal in Role::"data-steward" };`},
			req:          with(func(r *policy.Request) { r.PII = true }),
			wantPolicies: []string{"pii"}, wantReason: "denied by policy pii",
		},
		{
			name: "pii allowed to data steward",
			files: map[string]string{"acme/main.cedar": permitAll + "\n" +
				`@id("pii") forbid (principal, action, resource) when { context.pii } unless { principal in Role::"data-steward" };`},
			req:       with(func(r *policy.Request) { r.PII, r.Roles = true, []string{"data-steward"} }),
			wantAllow: true, wantPolicies: []string{"all"}, wantReason: "allowed by policy all",
		},
		{
			name: "context attributes",
			files: map[string]string{"acme/main.cedar": `@id("ctx") permit (principal, action, resource) when {
				context.tenant == "acme" && context.access == "read" && context.system == "sharepoint" && !context.pii &&
				principal.email like "*@acme.example" && principal.tenant == "acme" };`},
			req: read(), wantAllow: true, wantPolicies: []string{"ctx"}, wantReason: "allowed by policy ctx",
		},
		{
			name: "resource attribute condition matches",
			files: map[string]string{"acme/main.cedar": `@id("mkt") permit (principal, action, resource == System::"sharepoint")
				when { resource has site && resource.site == "marketing" && resource.tenant == "acme" };`},
			req: read(), wantAllow: true, wantPolicies: []string{"mkt"}, wantReason: "allowed by policy mkt",
		},
		{
			name: "resource attribute condition differs",
			files: map[string]string{"acme/main.cedar": `@id("mkt") permit (principal, action, resource)
				when { resource has site && resource.site == "marketing" };`},
			req:        with(func(r *policy.Request) { r.Resource["site"] = "finance" }),
			wantReason: "(default deny)",
		},
		{
			name: "nil resource map",
			files: map[string]string{"acme/main.cedar": `@id("mkt") permit (principal, action, resource)
				when { resource has site && resource.site == "marketing" };`},
			req:        with(func(r *policy.Request) { r.Resource = nil }),
			wantReason: "(default deny)",
		},
		{
			name: "resource cannot spoof its tenant",
			files: map[string]string{"acme/main.cedar": `@id("t") forbid (principal, action, resource) unless { resource.tenant == "acme" };` +
				"\n" + permitAll},
			req:       with(func(r *policy.Request) { r.Resource["tenant"] = "globex" }),
			wantAllow: true, wantPolicies: []string{"all"}, wantReason: "allowed by policy all",
		},
		{
			name:       "permit that errors is skipped and reported",
			files:      map[string]string{"acme/main.cedar": `@id("cls") permit (principal, action, resource) when { resource.classification == "public" };`},
			req:        read(),
			wantReason: "(default deny); 1 policy failed to evaluate: cls: ",
		},
		{
			name: "forbid that errors fails closed",
			files: map[string]string{"acme/main.cedar": permitAll + "\n" +
				`@id("secret") forbid (principal, action, resource) when { resource.classification == "secret" };`},
			req:          read(),
			wantPolicies: []string{"secret"}, wantReason: "denied: forbid policy secret failed to evaluate (fail closed): secret: ",
		},
		{
			name:       "unknown tenant",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.Tenant = "initech" }),
			wantReason: `denied: no policies for tenant "initech" (default deny)`,
		},
		{
			name:       "no tenant",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.Tenant = "" }),
			wantReason: "denied: request names no tenant",
		},
		{
			name:       "no user",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.UserID = "" }),
			wantReason: "denied: request names no user",
		},
		{
			name:       "no system",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.TargetSystem = "" }),
			wantReason: "denied: request names no target system",
		},
		{
			name:       "no operation",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.Operation = "" }),
			wantReason: "denied: request names no operation",
		},
		{
			name:       "bad access",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.Access = "admin" }),
			wantReason: `denied: access "admin" is neither "read" nor "write"`,
		},
		{
			name:       "operation contradicts access",
			files:      map[string]string{"acme/main.cedar": permitAll},
			req:        with(func(r *policy.Request) { r.Operation, r.Access = "write", "read" }),
			wantReason: `denied: operation "write" contradicts access "read"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := load(t, tt.files)
			got := e.Decide(context.Background(), tt.req)
			checkDecision(t, got, tt.wantAllow, tt.wantPolicies, tt.wantReason)
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	e, _ := load(t, map[string]string{
		"acme/main.cedar":   `@id("acme-cm") permit (principal in Role::"campaign-manager", action in Action::"read", resource);`,
		"globex/main.cedar": `@id("globex-all") permit (principal, action, resource);`,
		// Global permits reach tenants with a folder, not unknown ones.
		"_global/main.cedar": `@id("ops") permit (principal == User::"ops", action, resource);`,
		// Reserved and hidden folders are no tenants.
		"_drafts/main.cedar": `permit (principal, action, resource);`,
		".git/main.cedar":    `permit (principal, action, resource);`,
	})
	if got, want := e.Tenants(), []string{"acme", "globex"}; !slices.Equal(got, want) {
		t.Errorf("Tenants() = %q, want %q", got, want)
	}
	tests := []struct {
		name         string
		req          policy.Request
		wantAllow    bool
		wantPolicies []string
		wantReason   string
	}{
		{
			name:       "globex permit-all never applies to acme",
			req:        with(func(r *policy.Request) { r.Roles = nil; r.Operation, r.Access = "upload_document", "write" }),
			wantReason: "(default deny)",
		},
		{
			name:      "globex permit-all applies to globex",
			req:       with(func(r *policy.Request) { r.Tenant, r.Roles = "globex", nil }),
			wantAllow: true, wantPolicies: []string{"globex-all"}, wantReason: "allowed by policy globex-all",
		},
		{
			name:      "acme policy applies to acme",
			req:       read(),
			wantAllow: true, wantPolicies: []string{"acme-cm"}, wantReason: "allowed by policy acme-cm",
		},
		{
			name:      "global permit applies to acme",
			req:       with(func(r *policy.Request) { r.UserID, r.Roles = "ops", nil }),
			wantAllow: true, wantPolicies: []string{"_global/ops"}, wantReason: "allowed by policy _global/ops",
		},
		{
			name:       "tenant without folder gets default deny, globals included",
			req:        with(func(r *policy.Request) { r.Tenant, r.UserID = "initech", "ops" }),
			wantReason: `no policies for tenant "initech" (default deny)`,
		},
		{
			name:       "reserved folder is no tenant",
			req:        with(func(r *policy.Request) { r.Tenant = "_drafts" }),
			wantReason: `no policies for tenant "_drafts" (default deny)`,
		},
		{
			name:       "global folder is no tenant",
			req:        with(func(r *policy.Request) { r.Tenant, r.UserID = "_global", "ops" }),
			wantReason: `no policies for tenant "_global" (default deny)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, e.Decide(context.Background(), tt.req), tt.wantAllow, tt.wantPolicies, tt.wantReason)
		})
	}
}

func TestGlobalForbid(t *testing.T) {
	e, _ := load(t, map[string]string{
		"acme/main.cedar":     `@id("all") permit (principal, action, resource);`,
		"globex/main.cedar":   `permit (principal, action, resource);`,
		"_global/pii.cedar":   `@id("no-pii-writes") forbid (principal, action in Action::"write", resource) when { context.pii };`,
		"_global/other.cedar": `forbid (principal, action, resource == System::"legacy");`,
	})
	write := func(tenant string, pii bool) policy.Request {
		return with(func(r *policy.Request) {
			r.Tenant, r.Operation, r.Access, r.PII = tenant, "upload_document", "write", pii
		})
	}
	tests := []struct {
		name         string
		req          policy.Request
		wantAllow    bool
		wantPolicies []string
		wantReason   string
	}{
		{"acme pii write", write("acme", true), false, []string{"_global/no-pii-writes"}, "denied by policy _global/no-pii-writes"},
		{"globex pii write", write("globex", true), false, []string{"_global/no-pii-writes"}, "denied by policy _global/no-pii-writes"},
		{"acme plain write", write("acme", false), true, []string{"all"}, "allowed by policy all"},
		{"globex plain write", write("globex", false), true, []string{"main.cedar#0"}, "allowed by policy main.cedar#0"},
		{"global id without @id", with(func(r *policy.Request) { r.TargetSystem = "legacy" }), false,
			[]string{"_global/other.cedar#0"}, "denied by policy _global/other.cedar#0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, e.Decide(context.Background(), tt.req), tt.wantAllow, tt.wantPolicies, tt.wantReason)
		})
	}
}

func TestExample(t *testing.T) {
	e, _ := load(t, map[string]string{"acme/" + policy.ExampleFile: string(policy.Example("acme"))})
	req := func(roles []string, op, access, system string, pii bool) policy.Request {
		return with(func(r *policy.Request) {
			r.Roles, r.Operation, r.Access, r.TargetSystem, r.PII = roles, op, access, system, pii
		})
	}
	cm, admin := []string{"campaign-manager"}, []string{"admin"}
	tests := []struct {
		name         string
		req          policy.Request
		wantAllow    bool
		wantPolicies []string
	}{
		{"campaign manager reads sharepoint", req(cm, "search_documents", "read", "sharepoint", true), true, []string{"campaign-managers-read-sharepoint"}},
		{"campaign manager writes sharepoint", req(cm, "upload_document", "write", "sharepoint", false), false, nil},
		{"campaign manager reads crm", req(cm, "search_contacts", "read", "crm", false), false, nil},
		{"admin writes anything", req(admin, "delete_contact", "write", "crm", false), true, []string{"admins-all"}},
		{"admin writes pii", req(admin, "delete_contact", "write", "crm", true), false, []string{"pii-writes-need-data-steward"}},
		{"steward admin writes pii", req([]string{"admin", "data-steward"}, "delete_contact", "write", "crm", true), true, []string{"admins-all"}},
		{"nobody", req(nil, "search_documents", "read", "sharepoint", false), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, e.Decide(context.Background(), tt.req), tt.wantAllow, tt.wantPolicies, "")
		})
	}
}

func TestExampleQuotesTenant(t *testing.T) {
	// A hostile tenant name must not escape the header comment.
	e, _ := load(t, map[string]string{"acme/main.cedar": string(policy.Example("x\npermit (principal, action, resource);"))})
	d := e.Decide(context.Background(), with(func(r *policy.Request) { r.Roles = nil }))
	checkDecision(t, d, false, nil, "(default deny)")
}

func TestDecisionMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"acme/main.cedar": `permit (principal in Role::"campaign-manager", action, resource);`})
	reg := prometheus.NewRegistry()
	m, err := policy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	e, err := policy.Load(context.Background(), policy.Config{Dir: dir, Metrics: m}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.Decide(ctx, read())
	e.Decide(ctx, read())
	e.Decide(ctx, with(func(r *policy.Request) { r.Roles = nil }))
	e.Decide(ctx, with(func(r *policy.Request) { r.Tenant = "nobody-knows" }))
	tests := []struct {
		tenant, effect string
		want           float64
	}{
		{"acme", "allow", 2},
		{"acme", "deny", 1},
		{"_unknown", "deny", 1},
		{"nobody-knows", "deny", 0},
	}
	for _, tt := range tests {
		got := counterValue(t, reg, "bridge_policy_decisions_total", map[string]string{"tenant": tt.tenant, "effect": tt.effect})
		if got != tt.want {
			t.Errorf("decisions_total{tenant=%q,effect=%q} = %v, want %v", tt.tenant, tt.effect, got, tt.want)
		}
	}
	if _, err := policy.NewMetrics(reg); err == nil {
		t.Error("NewMetrics registered twice on one registry: got nil error, want one")
	}
}

func TestDecideConcurrentWithReload(t *testing.T) {
	e, dir := load(t, map[string]string{"acme/main.cedar": `permit (principal, action, resource);`})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				e.Decide(ctx, read())
				e.Tenants()
				e.Loaded()
			}
		})
	}
	for i := range 20 {
		body := `permit (principal, action, resource);`
		if i%2 == 1 {
			body = `forbid (principal, action, resource);`
		}
		writeFiles(t, dir, map[string]string{"acme/main.cedar": body, "globex/main.cedar": body})
		if err := e.Reload(ctx); err != nil {
			t.Errorf("Reload: %v", err)
		}
	}
	wg.Wait()
}
