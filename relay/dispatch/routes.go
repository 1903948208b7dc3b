package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// ConnectorInfo describes a connector in GET /v1/connectors.
type ConnectorInfo struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	AuthMethod string          `json:"authMethod"`
	Operations []OperationInfo `json:"operations"`
}

// OperationInfo describes an operation, with the pattern its credentials follow.
type OperationInfo struct {
	connectors.Operation
	AuthPattern connectors.AuthPattern `json:"authPattern"`
}

// Connectors lists the connectors and their operations, sorted by id.
func (d *Dispatcher) Connectors() []ConnectorInfo {
	out := make([]ConnectorInfo, 0, len(d.ids))
	for _, id := range d.ids {
		s := d.systems[id]
		ci := ConnectorInfo{ID: id, Name: s.c.Name(), AuthMethod: s.c.AuthMethod()}
		for _, op := range s.c.Operations() {
			ci.Operations = append(ci.Operations, OperationInfo{Operation: op, AuthPattern: s.ops[op.Name].auth})
		}
		out = append(out, ci)
	}
	return out
}

func (d *Dispatcher) serveConnectors(w http.ResponseWriter, r *http.Request) {
	x := d.begin(w, r, "connectors.list")
	if _, err := d.cfg.Auth.Authenticate(r.Context(), r); err != nil {
		x.refuse(r.Context(), w, authProblem(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"connectors": d.Connectors()})
}

// Health is the body of GET /v1/connectors/{id}/health.
type Health struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"` // "ok" or "unhealthy"
	Detail    string    `json:"detail,omitempty"`
	LatencyMs float64   `json:"latencyMs"`
	CheckedAt time.Time `json:"checkedAt"`
}

// Health checks one connector for tenant, within 10 seconds.
func (d *Dispatcher) Health(ctx context.Context, id, tenant string) (Health, bool) {
	s, ok := d.systems[id]
	if !ok {
		return Health{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := d.cfg.Now()
	err := s.c.HealthCheck(ctx, tenant)
	h := Health{ID: id, Status: "ok", CheckedAt: start.UTC(), LatencyMs: float64(d.cfg.Now().Sub(start).Microseconds()) / 1000}
	if err != nil {
		h.Status = "unhealthy"
		h.Detail = "the check failed"
		if ce := (*connectors.Error)(nil); errors.As(err, &ce) {
			h.Detail = string(ce.Class) + ": " + ce.Detail
		}
	}
	return h, true
}

func (d *Dispatcher) serveHealth(w http.ResponseWriter, r *http.Request) {
	x := d.begin(w, r, "connectors.health")
	if !x.authenticate(r.Context(), w, r) {
		return
	}
	h, ok := d.Health(r.Context(), r.PathValue("id"), x.caller.Tenant)
	if !ok {
		p := problem(http.StatusNotFound, ProblemUnknownSystem, "Unknown target system", fmt.Sprintf("no connector %q", boundedLabel(r.PathValue("id"))))
		p.TraceID = x.trace
		writeProblem(w, p)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// AuditSystem and AuditQuery are the target system and operation that
// policies see for GET /v1/audit: permit them to the roles that may read
// their tenant's audit records.
const (
	AuditSystem = "audit"
	AuditQuery  = "query"
)

func (d *Dispatcher) serveAudit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	x := d.begin(w, r, "audit.query")
	if !x.authenticate(ctx, w, r) {
		return
	}
	x.rec.TargetSystem, x.rec.Operation = AuditSystem, AuditQuery
	q, err := parseAuditQuery(r)
	if err != nil {
		x.refuse(ctx, w, problem(http.StatusBadRequest, ProblemInvalidRequest, "Invalid query", err.Error()))
		return
	}
	// The tenant is the caller's, never a parameter.
	q.Tenant = x.caller.Tenant
	x.rec.Request = audit.Redact(r.URL.Query())
	dec := d.cfg.Policy.Decide(ctx, policy.Request{
		Tenant: x.caller.Tenant, UserID: x.caller.UserID, Email: x.caller.Email, Roles: x.caller.Roles,
		TargetSystem: AuditSystem, Operation: AuditQuery, Access: string(connectors.Read), PII: true,
	})
	x.rec.Policy = audit.PolicyDecision{Effect: effect(dec.Allow), Policies: dec.Policies, Reason: dec.Reason}
	if !dec.Allow {
		p := problem(http.StatusForbidden, ProblemDenied, "Denied by policy", dec.Reason)
		p.Policies, p.Reason = dec.Policies, dec.Reason
		x.refuse(ctx, w, p)
		return
	}
	recs, err := d.cfg.Audit.Query(ctx, q)
	if err != nil {
		d.log.Error("audit query failed", "trace_id", x.trace, "err", err)
		x.refuse(ctx, w, problem(http.StatusServiceUnavailable, ProblemAuditUnavailable, "Audit unavailable", "the audit log could not be read"))
		return
	}
	x.rec.Response = audit.Response{Success: true, LatencyMs: x.latencyMs()}
	if _, err := d.cfg.Audit.Append(context.WithoutCancel(ctx), x.rec); err != nil {
		x.refuse(ctx, w, problem(http.StatusServiceUnavailable, ProblemAuditUnavailable, "Audit unavailable",
			"the records were withheld because this query's own audit record could not be stored"))
		return
	}
	out := map[string]any{"records": recs}
	if len(recs) > 0 && len(recs) == q.Limit {
		out["next"] = strconv.FormatUint(recs[len(recs)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

// parseAuditQuery reads since, until (RFC 3339), user, system, operation,
// trace, event, limit and after (a cursor) from the query string.
func parseAuditQuery(r *http.Request) (audit.Query, error) {
	v := r.URL.Query()
	q := audit.Query{
		UserID: v.Get("user"), TargetSystem: v.Get("system"), Operation: v.Get("operation"),
		TraceID: v.Get("trace"), EventType: v.Get("event"), Limit: 100,
	}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, fmt.Errorf("%s: want an RFC 3339 time such as 2026-12-04T10:00:00Z", f.name)
			}
			*f.t = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return q, fmt.Errorf("limit: want a number from 1 to 1000")
		}
		q.Limit = n
	}
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("after: want the next value of the previous page")
		}
		q.After = n
	}
	return q, nil
}
