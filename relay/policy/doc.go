// Package policy is the relay's policy decision point: it answers, per
// tenant, whether a user may run an operation on a target system, using
// Cedar (the policy language of Amazon Verified Permissions) through
// github.com/cedar-policy/cedar-go.
//
// # Decisions
//
// Cedar is default deny: a request is allowed only when at least one permit
// policy matches it and no forbid policy does. A forbid always overrides a
// permit. A [Decision] names the policies that decided it: the permits that
// allowed it, or the forbids that denied it; a default deny names none.
//
// Cedar skips a policy whose condition fails to evaluate (for example
// resource.site when the request carries no site). This package keeps that
// rule for permits, but fails closed for forbids: when a forbid policy errors
// on a request that would otherwise be allowed, the request is denied and the
// decision names that forbid. Write conditions on optional attributes with
// "has" (resource has site && resource.site == "hr") so they never error.
//
// # Tenant isolation
//
// Every tenant has its own compiled policy set, and [Engine.Decide] only ever
// evaluates the set of the request's tenant. A request naming a tenant that
// has no folder is denied without evaluating any policy, not even the global
// ones.
//
// # Files
//
// Policies are read from [Config.Dir]:
//
//	Dir/
//	  _global/*.cedar   applied to every tenant (typically forbid rules); optional
//	  acme/*.cedar      the policies of tenant "acme"
//	  globex/*.cedar    the policies of tenant "globex"
//
// All *.cedar files of a folder, in name order, form one policy set. Names
// starting with "." are ignored (editor files, Kubernetes ConfigMap
// internals), and folder names starting with "_" other than "_global" are
// reserved and ignored. Symbolic links are followed.
//
// A policy's id is its @id("...") annotation when it has one, else
// "<file name>#<index>", the index counting policies in that file from 0
// (main.cedar#2 is the third policy of main.cedar). Ids of global policies
// are prefixed with "_global/". Ids must be unique within a tenant.
//
// [Load] refuses to start when a file does not parse, with an error naming
// the file and position. [Engine.Run] then polls the folder every
// [Config.ReloadInterval] and reloads a folder whose content changed. A
// folder that fails to parse on reload keeps its previous policies; the error
// is logged once per change, counted in bridge_policy_reload_errors_total and
// reported by [Engine.Loaded] until the folder is fixed. Removing a tenant's
// folder removes its policies. Write files atomically (write a temporary
// file, then rename) so a reload never sees half a file.
//
// # Cedar model
//
// A [Request] becomes this Cedar request:
//
//	principal  User::"<UserID>"
//	           parents: Role::"<role>" for each of Roles
//	           attributes: {email: String, tenant: String}
//	action     Action::"<Operation>"
//	           parents: Action::"read" or Action::"write", as Access says
//	resource   System::"<TargetSystem>"
//	           attributes: Resource as strings, plus tenant (which always
//	           holds the request's tenant, whatever Resource says)
//	context    {tenant: String, access: String, pii: Bool, system: String}
//
// so policies can say principal in Role::"campaign-manager", action in
// Action::"read", resource == System::"sharepoint", resource.site == "hr"
// and context.pii. For example:
//
//	// Campaign managers may read everything on SharePoint.
//	@id("campaign-managers-read-sharepoint")
//	permit (
//	    principal in Role::"campaign-manager",
//	    action in Action::"read",
//	    resource == System::"sharepoint"
//	);
//
//	// Alice may search the HR site.
//	permit (
//	    principal == User::"alice",
//	    action == Action::"search_documents",
//	    resource == System::"sharepoint"
//	) when { resource has site && resource.site == "hr" };
//
//	// Nobody but data stewards writes personal data.
//	@id("pii-writes-need-data-steward")
//	forbid (principal, action in Action::"write", resource)
//	when { context.pii }
//	unless { principal in Role::"data-steward" };
//
// [Example] returns a starter policy set for a new tenant.
//
// # Concurrency
//
// [Engine.Decide], [Engine.Tenants] and [Engine.Loaded] may be called from
// any goroutine, concurrently with a reload: they read an immutable snapshot
// that a reload replaces atomically. [Engine.Run] and [Engine.Reload] are
// serialized by the engine.
package policy
