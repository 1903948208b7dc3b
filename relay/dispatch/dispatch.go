package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/mcc-bridge/bridge/tunnel/backoff"
)

// Authenticator verifies the caller of a request (callerauth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (callerauth.Caller, error)
}

// Decider is the policy decision point (policy.Engine).
type Decider interface {
	Decide(ctx context.Context, req policy.Request) policy.Decision
}

// AuditLog keeps audit records durably (audit.Log).
type AuditLog interface {
	Append(ctx context.Context, r audit.Record) (audit.Record, error)
	Query(ctx context.Context, q audit.Query) ([]audit.Record, error)
}

// Resourcer is implemented by connectors that describe the resource an
// operation touches, for policies (e.g. {"site": ...}).
type Resourcer interface {
	Resource(op string, payload json.RawMessage) map[string]string
}

// RetryConfig is connectors.RetryConfig: when a failed execution is tried again.
type RetryConfig = connectors.RetryConfig

// Config configures a Dispatcher. Connectors, Auth, Policy and Audit are
// required; the zero value of every other field means its default.
type Config struct {
	Connectors []connectors.Connector
	Auth       Authenticator
	Policy     Decider
	Audit      AuditLog
	// Credentials gets credentials for connectors that need them. Nil
	// means only connectors that authenticate with the agent tunnel
	// (AuthMethod "mtls-tunnel") can run.
	Credentials connectors.Credentials
	// Logger receives one line per request. Nil means none.
	Logger *slog.Logger
	// Metrics records requests. Nil means none.
	Metrics *Metrics
	// Observe, when set, is told each connector call's outcome (the
	// health dashboard's recorder).
	Observe func(system string, ok bool, latency time.Duration)
	// Timeout bounds a dispatch whose operation sets none. Zero means 30s.
	Timeout time.Duration
	// Retry configures retries.
	Retry RetryConfig
	// Rate and Burst limit each (tenant, connector) pair. Zero means 200/s
	// and a burst of 400.
	Rate  rate.Limit
	Burst int
	// MaxBody caps a request body. Zero means 1 MiB.
	MaxBody int64
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Dispatcher is the relay's one front door to every target system.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	systems map[string]*system
	ids     []string // sorted system ids

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // guarded by mu; key tenant + "\x00" + system
}

type system struct {
	c   connectors.Connector
	ops map[string]*operation
}

type operation struct {
	connectors.Operation
	auth            connectors.AuthPattern
	retry           connectors.RetryConfig // the operation's, over the dispatcher's
	payload, result *schema
}

// New checks cfg, compiles every operation's schemas and returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Auth == nil || cfg.Policy == nil || cfg.Audit == nil {
		return nil, errors.New("dispatch: auth, policy and audit are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.Retry = cfg.Retry.WithDefaults()
	if cfg.Rate <= 0 {
		cfg.Rate = 200
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 400
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dispatcher{cfg: cfg, log: cfg.Logger, systems: map[string]*system{}, limiters: map[string]*rate.Limiter{}}
	for _, c := range cfg.Connectors {
		id := c.ID()
		if !nameRE.MatchString(id) {
			return nil, fmt.Errorf("dispatch: connector id %q: want lower-case letters, digits and '_'", id)
		}
		if _, dup := d.systems[id]; dup {
			return nil, fmt.Errorf("dispatch: two connectors with id %q", id)
		}
		s := &system{c: c, ops: map[string]*operation{}}
		for _, op := range c.Operations() {
			if !nameRE.MatchString(op.Name) {
				return nil, fmt.Errorf("dispatch: %s operation %q: want lower-case letters, digits and '_'", id, op.Name)
			}
			o := &operation{Operation: op, auth: connectors.ChooseAuth(op), retry: cfg.Retry}
			if op.Retry != nil {
				o.retry = op.Retry.Over(cfg.Retry)
			}
			var err error
			if o.payload, err = compileSchema("mcc:///"+id+"/"+op.Name+"/payload.json", op.Payload); err != nil {
				return nil, fmt.Errorf("dispatch: %w", err)
			}
			if o.result, err = compileSchema("mcc:///"+id+"/"+op.Name+"/result.json", op.Result); err != nil {
				return nil, fmt.Errorf("dispatch: %w", err)
			}
			s.ops[op.Name] = o
		}
		d.systems[id] = s
		d.ids = append(d.ids, id)
	}
	sort.Strings(d.ids)
	return d, nil
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Register adds the dispatcher's routes to mux: POST /v1/dispatch,
// GET /v1/connectors, GET /v1/connectors/{id}/health and GET /v1/audit.
func (d *Dispatcher) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/dispatch", d.serveDispatch)
	mux.HandleFunc("GET /v1/connectors", d.serveConnectors)
	mux.HandleFunc("GET /v1/connectors/{id}/health", d.serveHealth)
	mux.HandleFunc("GET /v1/audit", d.serveAudit)
}

// Handler returns a handler with only the dispatcher's routes.
func (d *Dispatcher) Handler() http.Handler {
	mux := http.NewServeMux()
	d.Register(mux)
	return mux
}

// Request is the body of POST /v1/dispatch.
type Request struct {
	TargetSystem string          `json:"targetSystem"`
	Operation    string          `json:"operation"`
	Payload      json.RawMessage `json:"payload"`
}

// Response is the body of a successful dispatch (unless the operation
// streams content).
type Response struct {
	TraceID      string          `json:"traceId"`
	TargetSystem string          `json:"targetSystem"`
	Operation    string          `json:"operation"`
	Result       json.RawMessage `json:"result"`
	Meta         Meta            `json:"meta"`
}

// Meta says how a dispatch went.
type Meta struct {
	LatencyMs   float64  `json:"latencyMs"`
	Attempts    int      `json:"attempts"`
	AuthPattern string   `json:"authPattern"`
	Policies    []string `json:"policies"`
}

// exchange is one request in flight: what the audit record and the log
// line need, filled in as the flow goes.
type exchange struct {
	d      *Dispatcher
	start  time.Time
	trace  string
	rec    audit.Record
	caller callerauth.Caller
}

func (d *Dispatcher) begin(w http.ResponseWriter, r *http.Request, event string) *exchange {
	x := &exchange{d: d, start: d.cfg.Now()}
	x.trace, _ = TraceID(r)
	w.Header().Set("X-Trace-Id", x.trace)
	if tp := traceparent(x.trace); tp != "" {
		w.Header().Set("traceparent", tp)
	}
	x.rec = audit.Record{Timestamp: x.start.UTC(), TraceID: x.trace, EventType: event, Tenant: audit.Tenant{ID: AnonymousTenant}}
	return x
}

// AnonymousTenant is the audit tenant of requests refused before the
// caller was known (no or bad token).
const AnonymousTenant = "_unauthenticated"

// authenticate verifies the caller; on failure it refuses the request.
func (x *exchange) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	c, err := x.d.cfg.Auth.Authenticate(ctx, r)
	if err != nil {
		x.refuse(ctx, w, authProblem(err))
		return false
	}
	x.caller = c
	x.rec.User = audit.User{ID: c.UserID, Email: c.Email, Roles: c.Roles}
	x.rec.Tenant = audit.Tenant{ID: c.Tenant, Name: c.TenantName}
	x.rec.AuthMethod = c.AuthMethod
	return true
}

func authProblem(err error) *Problem {
	var ae *callerauth.Error
	if errors.As(err, &ae) {
		if ae.Kind == callerauth.KindUnavailable {
			return problem(http.StatusServiceUnavailable, ProblemBase+string(ae.Kind), "Identity provider unavailable", ae.Detail)
		}
		return problem(http.StatusUnauthorized, ProblemBase+string(ae.Kind), "Unauthenticated", ae.Detail)
	}
	return problem(http.StatusUnauthorized, ProblemBase+"unauthenticated", "Unauthenticated", "the bearer token could not be verified")
}

// refuse records and answers a refused or failed request.
func (x *exchange) refuse(ctx context.Context, w http.ResponseWriter, p *Problem) {
	p.TraceID = x.trace
	x.rec.EventType += ".refused"
	x.rec.Response = audit.Response{Success: false, LatencyMs: x.latencyMs(), Error: p.Type}
	if _, err := x.d.cfg.Audit.Append(context.WithoutCancel(ctx), x.rec); err != nil {
		x.d.log.Error("audit record of a refused request not stored", "trace_id", x.trace, "err", err)
	}
	sysLabel, opLabel := x.d.labels(x.rec.TargetSystem, x.rec.Operation)
	x.d.cfg.Metrics.observe(sysLabel, opLabel, p.shortType(), time.Duration(x.rec.Response.LatencyMs*float64(time.Millisecond)))
	x.d.log.Info("dispatch refused", "trace_id", x.trace, "tenant", x.rec.Tenant.ID, "user", x.rec.User.ID,
		"system", x.rec.TargetSystem, "operation", x.rec.Operation, "problem", p.shortType(), "status", p.Status)
	writeProblem(w, p)
}

func (x *exchange) latencyMs() float64 {
	return float64(x.d.cfg.Now().Sub(x.start).Microseconds()) / 1000
}

func (d *Dispatcher) serveDispatch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	x := d.begin(w, r, "dispatch")
	if !x.authenticate(ctx, w, r) {
		return
	}
	req, p := d.decode(w, r)
	if p != nil {
		x.refuse(ctx, w, p)
		return
	}
	x.rec.TargetSystem, x.rec.Operation = req.TargetSystem, req.Operation
	sys, ok := d.systems[req.TargetSystem]
	if !ok {
		x.rec.TargetSystem = boundedLabel(req.TargetSystem)
		x.refuse(ctx, w, problem(http.StatusNotFound, ProblemUnknownSystem, "Unknown target system",
			fmt.Sprintf("no connector %q; GET /v1/connectors lists them", boundedLabel(req.TargetSystem))))
		return
	}
	op, ok := sys.ops[req.Operation]
	if !ok {
		x.rec.Operation = boundedLabel(req.Operation)
		x.refuse(ctx, w, problem(http.StatusNotFound, ProblemUnknownOperation, "Unknown operation",
			fmt.Sprintf("%s has no operation %q; GET /v1/connectors lists them", sys.c.ID(), boundedLabel(req.Operation))))
		return
	}
	x.rec.Request = audit.Redact(req.Payload)
	if errs, err := op.payload.validate(req.Payload); err != nil || len(errs) > 0 {
		p := problem(http.StatusBadRequest, ProblemInvalidPayload, "Invalid payload", "the payload does not match the operation's schema")
		if err != nil {
			p.Detail = "the payload is not valid JSON"
		} else {
			p.Pointer, p.Errors = errs[0].Pointer, errs
			p.Detail = fmt.Sprintf("payload%s: %s", errs[0].Pointer, errs[0].Detail)
		}
		x.refuse(ctx, w, p)
		return
	}

	// Policy.
	preq := policy.Request{
		Tenant: x.caller.Tenant, UserID: x.caller.UserID, Email: x.caller.Email, Roles: x.caller.Roles,
		TargetSystem: sys.c.ID(), Operation: op.Name, Access: string(op.Access), PII: op.PII,
	}
	if rs, ok := sys.c.(Resourcer); ok {
		preq.Resource = rs.Resource(op.Name, req.Payload)
	}
	dec := d.cfg.Policy.Decide(ctx, preq)
	x.rec.Policy = audit.PolicyDecision{Effect: effect(dec.Allow), Policies: dec.Policies, Reason: dec.Reason}
	if !dec.Allow {
		p := problem(http.StatusForbidden, ProblemDenied, "Denied by policy", dec.Reason)
		p.Policies, p.Reason = dec.Policies, dec.Reason
		x.refuse(ctx, w, p)
		return
	}

	// Rate limit per (tenant, connector).
	if now, l := d.cfg.Now(), d.limiter(x.caller.Tenant, sys.c.ID()); !l.AllowN(now, 1) {
		wait := time.Duration((1 - l.TokensAt(now)) / float64(d.cfg.Rate) * float64(time.Second))
		p := problem(http.StatusTooManyRequests, ProblemRateLimited, "Rate limited",
			fmt.Sprintf("tenant %s exceeds %v requests/s to %s", x.caller.Tenant, float64(d.cfg.Rate), sys.c.ID()))
		p.RetryAfter = retryAfterSeconds(wait)
		x.refuse(ctx, w, p)
		return
	}

	timeout := d.cfg.Timeout
	if op.Timeout > 0 {
		timeout = op.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Credentials.
	cred, err := d.credential(ctx, sys, op, x.caller)
	if err != nil {
		d.log.Warn("no credential", "trace_id", x.trace, "tenant", x.caller.Tenant, "system", sys.c.ID(), "pattern", op.auth, "err", err)
		x.refuse(ctx, w, problem(http.StatusServiceUnavailable, ProblemCredentialUnavailable, "Credential unavailable",
			fmt.Sprintf("tenant %s has no working %s credential for %s; its integration owner must connect it", x.caller.Tenant, op.auth, sys.c.ID())))
		return
	}
	x.rec.AuthMethod = x.caller.AuthMethod + "; " + string(op.auth) + " via " + cred.Method
	if cred.Subject != "" {
		x.rec.AuthMethod += " as " + cred.Subject
	}

	// A write is recorded before it runs: if that record cannot be made
	// durable, nothing is done.
	if op.Access == connectors.Write {
		intent := x.rec
		intent.EventType = "dispatch.started"
		if _, err := d.cfg.Audit.Append(ctx, intent); err != nil {
			d.log.Error("audit unavailable: write refused", "trace_id", x.trace, "err", err)
			x.refuse(ctx, w, problem(http.StatusServiceUnavailable, ProblemAuditUnavailable, "Audit unavailable",
				"the action was refused because its audit record could not be stored; nothing was done"))
			return
		}
	}

	ec := connectors.ExecContext{
		User:       connectors.User{ID: x.caller.UserID, Email: x.caller.Email, Roles: x.caller.Roles},
		Tenant:     x.caller.Tenant,
		TraceID:    x.trace,
		Payload:    req.Payload,
		Credential: cred,
		Retry:      op.retry,
	}
	callStart := d.cfg.Now()
	res, attempts, err := d.execute(ctx, sys.c, op, ec)
	if connectors.ClassOf(err) == connectors.ClassUnauthorized && ctx.Err() == nil {
		// The system refused a credential before its time (rotated or
		// revoked at the vendor): drop it, and if a fresh one comes, try
		// once more. A refusal means nothing was done, so writes may too.
		if fresh, ok := d.freshCredential(ctx, sys, op, x.caller, cred); ok {
			d.log.Info("credential refused before its expiry; trying once with a fresh one", "trace_id", x.trace, "system", sys.c.ID())
			ec.Credential = fresh
			var more int
			res, more, err = d.execute(ctx, sys.c, op, ec)
			attempts += more
		}
	}
	if d.cfg.Observe != nil {
		d.cfg.Observe(sys.c.ID(), systemOK(err), d.cfg.Now().Sub(callStart))
	}
	if err != nil {
		p := d.errorProblem(ctx, sys.c.ID(), err)
		d.log.Warn("connector failed", "trace_id", x.trace, "system", sys.c.ID(), "operation", op.Name, "attempts", attempts, "class", connectors.ClassOf(err), "err", err)
		x.refuse(ctx, w, p)
		return
	}
	if res.Body != nil {
		defer res.Body.Close()
	} else if errs, err := op.result.validate(res.Data); err != nil || len(errs) > 0 {
		d.log.Error("connector result breaks its schema", "trace_id", x.trace, "system", sys.c.ID(), "operation", op.Name, "errors", errs, "err", err)
		x.refuse(ctx, w, problem(http.StatusBadGateway, ProblemBadConnectorResponse, "Bad connector response",
			"the connector's result does not match the operation's result schema"))
		return
	}

	// The outcome record. A read whose record cannot be stored is refused
	// (its result is not returned); a write has run already, under its
	// stored intent record, so its result is returned and the failure logged.
	x.rec.Response = audit.Response{Success: true, IDs: res.IDs, LatencyMs: x.latencyMs()}
	if _, err := d.cfg.Audit.Append(context.WithoutCancel(ctx), x.rec); err != nil {
		if op.Access != connectors.Write {
			d.log.Error("audit unavailable: result withheld", "trace_id", x.trace, "err", err)
			x.refuse(ctx, w, problem(http.StatusServiceUnavailable, ProblemAuditUnavailable, "Audit unavailable",
				"the result was withheld because its audit record could not be stored"))
			return
		}
		d.log.Error("audit record of a completed write not stored; its intent record stands", "trace_id", x.trace, "err", err)
	}
	lat := d.cfg.Now().Sub(x.start)
	d.cfg.Metrics.observe(sys.c.ID(), op.Name, "ok", lat)
	d.log.Info("dispatch", "trace_id", x.trace, "tenant", x.caller.Tenant, "user", x.caller.UserID,
		"system", sys.c.ID(), "operation", op.Name, "attempts", attempts, "latency", lat)

	if res.Body != nil {
		h := w.Header()
		h.Set("Content-Type", res.ContentType)
		if res.ContentType == "" {
			h.Set("Content-Type", "application/octet-stream")
		}
		if res.Size >= 0 {
			h.Set("Content-Length", strconv.FormatInt(res.Size, 10))
		}
		h.Set("Cache-Control", "no-store")
		if _, err := io.Copy(w, res.Body); err != nil {
			d.log.Warn("streaming content to the caller failed", "trace_id", x.trace, "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, Response{
		TraceID: x.trace, TargetSystem: sys.c.ID(), Operation: op.Name, Result: res.Data,
		Meta: Meta{LatencyMs: float64(lat.Microseconds()) / 1000, Attempts: attempts, AuthPattern: string(op.auth), Policies: dec.Policies},
	})
}

// decode reads the request body: one JSON object with targetSystem,
// operation and payload, nothing else.
func (d *Dispatcher) decode(w http.ResponseWriter, r *http.Request) (Request, *Problem) {
	var req Request
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.cfg.MaxBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return req, problem(http.StatusRequestEntityTooLarge, ProblemBodyTooLarge, "Body too large", fmt.Sprintf("the body exceeds %d bytes", d.cfg.MaxBody))
		}
		return req, problem(http.StatusBadRequest, ProblemInvalidJSON, "Invalid JSON", "the body could not be read")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, problem(http.StatusBadRequest, ProblemInvalidJSON, "Invalid JSON", jsonErrorDetail(err))
	}
	if dec.More() {
		return req, problem(http.StatusBadRequest, ProblemInvalidJSON, "Invalid JSON", "the body holds more than one JSON value")
	}
	if req.TargetSystem == "" || req.Operation == "" {
		return req, problem(http.StatusBadRequest, ProblemInvalidRequest, "Invalid request", "targetSystem and operation are required")
	}
	if len(req.Payload) == 0 || string(req.Payload) == "null" {
		req.Payload = json.RawMessage(`{}`)
	}
	return req, nil
}

// jsonErrorDetail describes a decoding error without quoting the body.
func jsonErrorDetail(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: want %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends in the middle of a JSON value"
	}
	// Unknown fields: encoding/json says `json: unknown field "x"`.
	if msg := err.Error(); len(msg) < 200 {
		return msg
	}
	return "the body is not a JSON object of the request's shape"
}

// boundedLabel keeps unknown names from callers short and printable.
func boundedLabel(s string) string {
	if !nameRE.MatchString(s) {
		return "invalid"
	}
	return s
}

// labels bounds metric labels to registered systems and operations.
func (d *Dispatcher) labels(sys, op string) (string, string) {
	s, ok := d.systems[sys]
	switch {
	case sys == "":
		return "none", "none"
	case !ok:
		return "unknown", "unknown"
	case op == "":
		return sys, "none"
	}
	if _, ok := s.ops[op]; !ok {
		return sys, "unknown"
	}
	return sys, op
}

func effect(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func (d *Dispatcher) limiter(tenant, system string) *rate.Limiter {
	k := tenant + "\x00" + system
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.limiters[k]
	if !ok {
		l = rate.NewLimiter(d.cfg.Rate, d.cfg.Burst)
		d.limiters[k] = l
	}
	return l
}

// credential gets the credential for the operation's pattern. Connectors
// that reach their system through the agent tunnel need none (the
// tunnel's mutual TLS is the service-to-service credential), nor do those
// whose AuthMethod is "none".
func (d *Dispatcher) credential(ctx context.Context, sys *system, op *operation, c callerauth.Caller) (connectors.Credential, error) {
	switch sys.c.AuthMethod() {
	case "mtls-tunnel":
		return connectors.Credential{Pattern: op.auth, Method: "mtls-tunnel", Subject: "agent of tenant " + c.Tenant}, nil
	case "none":
		return connectors.Credential{Pattern: op.auth, Method: "none"}, nil
	}
	if d.cfg.Credentials == nil {
		return connectors.Credential{}, connectors.ErrNoCredential
	}
	return d.cfg.Credentials.Credential(ctx, connectors.CredentialRequest{Tenant: c.Tenant, System: sys.c.ID(), Pattern: op.auth, UserID: c.UserID})
}

// credentialRejecter is a credential store that can drop a credential the
// system refused before its expiry (relay/credentials.Manager).
type credentialRejecter interface {
	Reject(ctx context.Context, req connectors.CredentialRequest, cred connectors.Credential) error
}

// freshCredential drops cred, which the system refused, and returns a
// different one if the store has or can get it.
func (d *Dispatcher) freshCredential(ctx context.Context, sys *system, op *operation, c callerauth.Caller, cred connectors.Credential) (connectors.Credential, bool) {
	rj, ok := d.cfg.Credentials.(credentialRejecter)
	if !ok || cred.Token == "" {
		return connectors.Credential{}, false
	}
	req := connectors.CredentialRequest{Tenant: c.Tenant, System: sys.c.ID(), Pattern: op.auth, UserID: c.UserID}
	if err := rj.Reject(ctx, req, cred); err != nil {
		d.log.Warn("could not drop a refused credential", "system", sys.c.ID(), "err", err)
		return connectors.Credential{}, false
	}
	fresh, err := d.credential(ctx, sys, op, c)
	if err != nil || fresh.Token == cred.Token {
		return connectors.Credential{}, false
	}
	return fresh, true
}

// execute runs the operation, retrying as RetryConfig says. It returns the
// result, the attempts made and the last error.
func (d *Dispatcher) execute(ctx context.Context, c connectors.Connector, op *operation, ec connectors.ExecContext) (connectors.Result, int, error) {
	bo := backoff.Policy{Base: op.retry.BaseDelay, Max: op.retry.MaxDelay}
	for attempt := 1; ; attempt++ {
		ec.Attempt = attempt
		if dl, ok := ctx.Deadline(); ok {
			ec.Timeout = time.Until(dl)
		}
		res, err := c.Execute(ctx, op.Name, ec)
		if err == nil {
			return res, attempt, nil
		}
		if ctx.Err() != nil {
			return res, attempt, &connectors.Error{Class: connectors.ClassTimeout, Detail: "the operation did not finish in time", Err: err}
		}
		cls := connectors.ClassOf(err)
		if attempt >= op.retry.MaxAttempts || !retryable(cls, op) {
			return res, attempt, err
		}
		delay := bo.Delay(attempt)
		var ce *connectors.Error
		if errors.As(err, &ce) && ce.RetryAfter > delay {
			delay = ce.RetryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return res, attempt, err
		}
		d.cfg.Metrics.retry(c.ID(), string(cls))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, attempt, &connectors.Error{Class: connectors.ClassTimeout, Detail: "the operation did not finish in time", Err: err}
		case <-t.C:
		}
	}
}

func retryable(cls connectors.Class, op *operation) bool {
	if op.Access == connectors.Write && cls != connectors.ClassRateLimited {
		return false
	}
	for _, c := range op.retry.Retryable {
		if c == cls {
			return true
		}
	}
	return false
}

// systemOK says whether an outcome counts as the system working (for the
// dashboard): the caller's own mistakes do not count against it.
func systemOK(err error) bool {
	switch connectors.ClassOf(err) {
	case "":
		return err == nil
	case connectors.ClassNotFound, connectors.ClassInvalid:
		return true
	}
	return false
}

// errorProblem maps a connector error to the problem the caller sees. Only
// the Detail of a classified error (which connectors keep free of secrets)
// reaches the caller.
func (d *Dispatcher) errorProblem(ctx context.Context, sys string, err error) *Problem {
	var ce *connectors.Error
	detail := ""
	if errors.As(err, &ce) {
		detail = ce.Detail
	}
	switch connectors.ClassOf(err) {
	case connectors.ClassRateLimited:
		p := problem(http.StatusTooManyRequests, ProblemUpstreamRateLimited, "Upstream rate limited", sys+" asked to slow down")
		p.RetryAfter = retryAfterSeconds(ce.RetryAfter)
		return p
	case connectors.ClassTimeout:
		return problem(http.StatusGatewayTimeout, ProblemTimeout, "Timeout", sys+": "+detail)
	case connectors.ClassAgentOffline:
		return problem(http.StatusServiceUnavailable, ProblemAgentOffline, "Agent offline", detail)
	case connectors.ClassNotFound:
		return problem(http.StatusNotFound, ProblemNotFound, "Not found", detail)
	case connectors.ClassInvalid:
		return problem(http.StatusUnprocessableEntity, ProblemUpstreamInvalid, "Refused by "+sys, detail)
	case connectors.ClassUnauthorized:
		return problem(http.StatusServiceUnavailable, ProblemCredentialUnavailable, "Credential refused", sys+" refused the tenant's credential; its integration owner must reconnect it")
	case connectors.ClassUnavailable:
		return problem(http.StatusBadGateway, ProblemConnectorUnavailable, "Connector unavailable", sys+": "+detail)
	}
	return problem(http.StatusBadGateway, ProblemConnectorUnavailable, "Connector unavailable", sys+" failed; see the relay log under this trace id")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
