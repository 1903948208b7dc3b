package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mcc-bridge/bridge/relay/policy"
)

func ExampleEngine_Decide() {
	dir, err := os.MkdirTemp("", "policies")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// What a development setup writes for a new tenant.
	if err := os.MkdirAll(filepath.Join(dir, "acme"), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acme", policy.ExampleFile), policy.Example("acme"), 0o644); err != nil {
		panic(err)
	}

	ctx := context.Background()
	e, err := policy.Load(ctx, policy.Config{Dir: dir}, nil)
	if err != nil {
		panic(err)
	}
	for _, req := range []policy.Request{
		{Tenant: "acme", UserID: "alice", Roles: []string{"campaign-manager"}, TargetSystem: "sharepoint", Operation: "search_documents", Access: "read"},
		{Tenant: "acme", UserID: "alice", Roles: []string{"campaign-manager"}, TargetSystem: "sharepoint", Operation: "upload_document", Access: "write"},
		{Tenant: "acme", UserID: "root", Roles: []string{"admin"}, TargetSystem: "crm", Operation: "delete_contact", Access: "write", PII: true},
	} {
		fmt.Println(e.Decide(ctx, req).Reason)
	}
	// Output:
	// allowed by policy campaign-managers-read-sharepoint
	// denied: no policy permits alice to upload_document on sharepoint (default deny)
	// denied by policy pii-writes-need-data-steward
}
