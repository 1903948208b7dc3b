package policy

import "fmt"

// ExampleFile is the file name the dev setup gives the output of [Example]
// inside the tenant's folder.
const ExampleFile = "main.cedar"

// Example returns a starter policy set for tenant, for a development setup
// to write to Dir/<tenant>/[ExampleFile]: campaign managers may read
// everything on SharePoint, admins may do anything, and nobody but data
// stewards may write personal data.
func Example(tenant string) []byte {
	return fmt.Appendf(nil, exampleTemplate, tenant)
}

const exampleTemplate = `// Policies of tenant %q (Cedar, https://docs.cedarpolicy.com).
//
// Default deny: a request is allowed only when a permit matches it and no
// forbid does. The relay reloads this folder within seconds of a change.
//
//   principal  User::"<user id>", in Role::"<role>" for each of its roles;
//              attributes email, tenant
//   action     Action::"<operation>", in Action::"read" or Action::"write"
//   resource   System::"<target system>", e.g. System::"sharepoint";
//              attributes of the resource (test optional ones with "has")
//   context    tenant, access ("read" or "write"), pii (bool), system

// Campaign managers may read everything on SharePoint.
@id("campaign-managers-read-sharepoint")
permit (
    principal in Role::"campaign-manager",
    action in Action::"read",
    resource == System::"sharepoint"
);

// Admins may do anything (within the forbids below and in _global).
@id("admins-all")
permit (
    principal in Role::"admin",
    action,
    resource
);

// Nobody but data stewards writes personal data.
@id("pii-writes-need-data-steward")
forbid (
    principal,
    action in Action::"write",
    resource
)
when { context.pii }
unless { principal in Role::"data-steward" };
`
