package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"golang.org/x/time/rate"
)

// Request is one authorization question.
type Request struct {
	// Tenant selects the policy set; a tenant without a folder is denied.
	Tenant string
	// UserID is the principal's id (required); Email is an attribute of it.
	UserID, Email string
	// Roles make the principal a member of Role::"<role>" for each role.
	Roles []string
	// TargetSystem is the system operated on, e.g. "sharepoint" (required).
	TargetSystem string
	// Operation is the operation run, e.g. "search_documents" (required).
	Operation string
	// Access is "read" or "write": the action group of Operation.
	Access string
	// PII is true when the operation touches personal data.
	PII bool
	// Resource holds resource attributes, e.g. {"site": "...", "id": "..."};
	// may be nil. A "tenant" key is replaced by Tenant.
	Resource map[string]string
}

// Decision is the answer, naming the policies that decided it.
type Decision struct {
	// Allow is true when the request may proceed.
	Allow bool
	// Policies are the ids of the policies that determined the decision
	// (the permit policies that allowed it, or the forbid policies that
	// denied it), sorted; empty for a default deny.
	Policies []string
	// Reason is a short human sentence: "allowed by policy X", "denied by
	// policy Y", "denied: no policy permits <user> to <op> on <system>
	// (default deny)", or an evaluation error summary.
	Reason string
}

// Access values of a [Request].
const (
	AccessRead  = "read"
	AccessWrite = "write"
)

// DefaultReloadInterval is the polling interval of [Engine.Run] when
// [Config.ReloadInterval] is zero.
const DefaultReloadInterval = 2 * time.Second

// Config configures an [Engine].
type Config struct {
	// Dir holds one folder of *.cedar files per tenant, plus an optional
	// _global folder (see the package documentation). Required.
	Dir string
	// ReloadInterval is how often Run looks for changed files. Zero means
	// DefaultReloadInterval; negative is an error.
	ReloadInterval time.Duration
	// Metrics records decisions and reload errors. Nil records nothing.
	Metrics *Metrics
}

// Engine decides requests against the policies of Config.Dir. Create it with
// [Load]; its methods may be called from any goroutine.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	// snap is the current immutable snapshot, replaced by reloads.
	snap atomic.Pointer[snapshot]
	// evalWarn rate-limits warnings about policies that fail to evaluate.
	evalWarn rate.Sometimes

	// mu serializes reloads and guards ld.
	mu sync.Mutex
	ld loader
}

// snapshot is what Decide reads: never modified once published.
type snapshot struct {
	// version counts the changes of the loaded policies, from 1 at Load.
	version int64
	// sets maps each tenant to its compiled policies, globals included.
	sets map[string]*cedar.PolicySet
	// err joins the errors of the folders and files that are not loaded
	// as they are on disk; nil when everything on disk is loaded.
	err error
}

// Load reads every policy folder of cfg.Dir. It fails when a file does not
// parse, with a [*ParseError] naming the file and position. Call
// [Engine.Run] to pick up later changes.
func Load(ctx context.Context, cfg Config, log *slog.Logger) (*Engine, error) {
	if cfg.Dir == "" {
		return nil, errors.New("policy: Config.Dir is required")
	}
	if cfg.ReloadInterval < 0 {
		return nil, fmt.Errorf("policy: negative Config.ReloadInterval %v", cfg.ReloadInterval)
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:      cfg,
		log:      log,
		metrics:  cfg.Metrics,
		evalWarn: rate.Sometimes{Interval: 10 * time.Second},
		ld:       newLoader(cfg.Dir),
	}
	if err := e.Reload(ctx); err != nil {
		return nil, fmt.Errorf("policy: load %s: %w", cfg.Dir, err)
	}
	s := e.snap.Load()
	log.LogAttrs(ctx, slog.LevelInfo, "policies loaded", slog.String("dir", cfg.Dir), slog.Any("tenants", slices.Sorted(maps.Keys(s.sets))))
	return e, nil
}

// Tenants returns the sorted names of the tenants that have policies loaded.
func (e *Engine) Tenants() []string {
	return slices.Sorted(maps.Keys(e.snap.Load().sets))
}

// Loaded reports the version of the loaded policies, which starts at 1 and
// grows with each change applied, and the errors of the files on disk that
// are not loaded (a reload kept the previous policies); lastErr is nil when
// the loaded policies are what is on disk.
func (e *Engine) Loaded() (version int64, lastErr error) {
	s := e.snap.Load()
	return s.version, s.err
}

// unknownTenant is the metrics label of requests naming a tenant without
// policies; folder names starting with "_" are never tenants.
const unknownTenant = "_unknown"

// Decide answers req against the policies of req.Tenant. It never blocks;
// ctx only carries logging values.
func (e *Engine) Decide(ctx context.Context, req Request) Decision {
	s := e.snap.Load()
	label := req.Tenant
	ps, ok := s.sets[req.Tenant]
	if !ok {
		label = unknownTenant
	}
	var d Decision
	if msg := invalid(req); msg != "" {
		d = Decision{Reason: "denied: " + msg}
	} else if !ok {
		d = Decision{Reason: fmt.Sprintf("denied: no policies for tenant %q (default deny)", req.Tenant)}
	} else {
		d = e.authorize(ctx, ps, req)
	}
	e.metrics.decision(label, d.Allow)
	e.log.LogAttrs(ctx, slog.LevelDebug, "policy decision",
		slog.String("tenant", req.Tenant), slog.String("user", req.UserID),
		slog.String("system", req.TargetSystem), slog.String("operation", req.Operation),
		slog.Bool("allow", d.Allow), slog.Any("policies", d.Policies), slog.String("reason", d.Reason))
	return d
}

// invalid returns why req cannot be evaluated, or "".
func invalid(req Request) string {
	switch {
	case req.Tenant == "":
		return "request names no tenant"
	case req.UserID == "":
		return "request names no user"
	case req.TargetSystem == "":
		return "request names no target system"
	case req.Operation == "":
		return "request names no operation"
	case req.Access != AccessRead && req.Access != AccessWrite:
		return fmt.Sprintf("access %q is neither %q nor %q", req.Access, AccessRead, AccessWrite)
	case (req.Operation == AccessRead || req.Operation == AccessWrite) && req.Operation != req.Access:
		return fmt.Sprintf("operation %q contradicts access %q", req.Operation, req.Access)
	}
	return ""
}

// Cedar entity types of the model.
const (
	typeUser   cedar.EntityType = "User"
	typeRole   cedar.EntityType = "Role"
	typeAction cedar.EntityType = "Action"
	typeSystem cedar.EntityType = "System"
)

// cedarRequest builds the Cedar request and entities of a valid req.
func cedarRequest(req Request) (cedar.Request, cedar.EntityMap) {
	tenant := cedar.String(req.Tenant)
	user := cedar.NewEntityUID(typeUser, cedar.String(req.UserID))
	roles := make([]cedar.EntityUID, 0, len(req.Roles))
	for _, r := range req.Roles {
		if r != "" {
			roles = append(roles, cedar.NewEntityUID(typeRole, cedar.String(r)))
		}
	}
	action := cedar.NewEntityUID(typeAction, cedar.String(req.Operation))
	group := cedar.NewEntityUID(typeAction, cedar.String(req.Access))
	system := cedar.NewEntityUID(typeSystem, cedar.String(req.TargetSystem))
	attrs := make(cedar.RecordMap, len(req.Resource)+1)
	for k, v := range req.Resource {
		attrs[cedar.String(k)] = cedar.String(v)
	}
	attrs["tenant"] = tenant

	entities := cedar.EntityMap{
		user: {
			UID:     user,
			Parents: cedar.NewEntityUIDSet(roles...),
			Attributes: cedar.NewRecord(cedar.RecordMap{
				"email":  cedar.String(req.Email),
				"tenant": tenant,
			}),
		},
		system: {UID: system, Attributes: cedar.NewRecord(attrs)},
		group:  {UID: group},
	}
	if action != group {
		entities[action] = cedar.Entity{UID: action, Parents: cedar.NewEntityUIDSet(group)}
	}
	return cedar.Request{
		Principal: user,
		Action:    action,
		Resource:  system,
		Context: cedar.NewRecord(cedar.RecordMap{
			"tenant": tenant,
			"access": cedar.String(req.Access),
			"pii":    cedar.Boolean(req.PII),
			"system": cedar.String(req.TargetSystem),
		}),
	}, entities
}

// authorize evaluates a valid req against ps.
func (e *Engine) authorize(ctx context.Context, ps *cedar.PolicySet, req Request) Decision {
	creq, entities := cedarRequest(req)
	dec, diag := cedar.Authorize(ps, entities, creq)
	if len(diag.Errors) > 0 {
		e.evalWarn.Do(func() {
			e.log.LogAttrs(ctx, slog.LevelWarn, "policies failed to evaluate (logged at most every 10s)",
				slog.String("tenant", req.Tenant), slog.String("user", req.UserID),
				slog.String("operation", req.Operation), slog.String("errors", errorsSummary(diag.Errors)))
		})
	}
	if dec == cedar.Allow {
		// Fail closed: a forbid that could not be evaluated might have
		// matched.
		var failed []cedar.DiagnosticError
		for _, de := range diag.Errors {
			if p := ps.Get(de.PolicyID); p != nil && p.Effect() == cedar.Forbid {
				failed = append(failed, de)
			}
		}
		if len(failed) > 0 {
			ids := errorIDs(failed)
			return Decision{Policies: ids, Reason: fmt.Sprintf("denied: %s %s failed to evaluate (fail closed): %s",
				plural(len(ids), "forbid policy", "forbid policies"), strings.Join(ids, ", "), errorsSummary(failed))}
		}
		ids := reasonIDs(diag.Reasons)
		return Decision{Allow: true, Policies: ids, Reason: fmt.Sprintf("allowed by %s %s",
			plural(len(ids), "policy", "policies"), strings.Join(ids, ", "))}
	}
	if len(diag.Reasons) > 0 {
		ids := reasonIDs(diag.Reasons)
		return Decision{Policies: ids, Reason: fmt.Sprintf("denied by %s %s",
			plural(len(ids), "policy", "policies"), strings.Join(ids, ", "))}
	}
	reason := fmt.Sprintf("denied: no policy permits %s to %s on %s (default deny)", req.UserID, req.Operation, req.TargetSystem)
	if len(diag.Errors) > 0 {
		reason += fmt.Sprintf("; %s failed to evaluate: %s",
			plural(len(diag.Errors), "1 policy", fmt.Sprintf("%d policies", len(diag.Errors))), errorsSummary(diag.Errors))
	}
	return Decision{Reason: reason}
}

// errorsSummary describes evaluation errors in one line.
func errorsSummary(errs []cedar.DiagnosticError) string {
	errs = slices.SortedFunc(slices.Values(errs), func(a, b cedar.DiagnosticError) int { return cmp.Compare(a.PolicyID, b.PolicyID) })
	parts := make([]string, len(errs))
	for i, de := range errs {
		parts[i] = fmt.Sprintf("%s: %s", de.PolicyID, de.Message)
	}
	return strings.Join(parts, "; ")
}

func reasonIDs(rs []cedar.DiagnosticReason) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = string(r.PolicyID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func errorIDs(errs []cedar.DiagnosticError) []string {
	ids := make([]string, len(errs))
	for i, de := range errs {
		ids[i] = string(de.PolicyID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
