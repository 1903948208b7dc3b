package custom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// Config configures a connector. The zero value of every field means its
// default.
type Config struct {
	// BaseURL, when set, replaces the definition's base URL (another
	// environment, or a test server). Empty means the definition's.
	BaseURL string
	// HTTPClient sends the requests. Nil means a client with a 60s
	// overall timeout (each execution's context usually ends sooner).
	HTTPClient *http.Client
	// Logger receives failures of the system (never credentials or
	// bodies). Nil means none.
	Logger *slog.Logger
	// Health, when set, is HealthCheck. Nil means an unauthenticated GET
	// of the base URL: any answer below 500 shows the system reachable
	// (HealthCheck has no credential, so it cannot show one works).
	Health func(ctx context.Context, tenant string) error
	// Now is the clock, for Retry-After dates. Nil means time.Now.
	Now func() time.Time
}

// maxBody caps an answer read into memory.
const maxBody = 16 << 20

// Connector is a connector made from a Definition. It is safe for
// concurrent use.
type Connector struct {
	def    Definition
	base   string // without a trailing slash
	ops    map[string]*op
	order  []string // operation names in the definition's order
	hc     *http.Client
	log    *slog.Logger
	health func(ctx context.Context, tenant string) error
	now    func() time.Time

	mu      sync.Mutex                // guards clients
	clients map[[32]byte]*http.Client // mTLS: a client per certificate
}

// New checks def and returns its connector.
func New(def Definition, cfg Config) (*Connector, error) {
	if cfg.BaseURL != "" {
		def.BaseURL = cfg.BaseURL
	}
	ops, err := def.check()
	if err != nil {
		return nil, fmt.Errorf("custom connector %q: %w", def.ID, err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The connector keeps its own copy: later edits of def change nothing.
	order := make([]string, 0, len(def.Operations))
	for _, od := range def.Operations {
		o := ops[od.Name]
		o.Payload, o.Result, o.Query = slices.Clone(o.Payload), slices.Clone(o.Result), slices.Clone(o.Query)
		if o.Pages != nil {
			pg := *o.Pages
			o.Pages = &pg
		}
		order = append(order, od.Name)
	}
	def.Operations = nil
	return &Connector{def: def, base: strings.TrimRight(def.BaseURL, "/"), ops: ops, order: order, hc: cfg.HTTPClient,
		log: cfg.Logger.With("system", def.ID), health: cfg.Health, now: cfg.Now}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return c.def.ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return c.def.Name }

// AuthMethod implements connectors.Connector: "bearer", "api-key",
// "basic" or "none".
func (c *Connector) AuthMethod() string {
	if c.def.Auth.Method == "api-key-header" {
		return "api-key"
	}
	return c.def.Auth.Method
}

// Operations implements connectors.Connector, in the definition's order.
func (c *Connector) Operations() []connectors.Operation {
	out := make([]connectors.Operation, 0, len(c.order))
	for _, name := range c.order {
		o := c.ops[name]
		out = append(out, connectors.Operation{
			Name: o.Name, Description: o.Description, Access: connectors.Access(o.Access), Attributed: o.Attributed, PII: o.PII,
			Payload: o.Payload, Result: o.Result,
		})
	}
	return out
}

// HealthCheck implements connectors.Connector: Config.Health when set,
// else an unauthenticated GET of the base URL, healthy on any answer
// below 500.
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.health != nil {
		return c.health(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/", nil)
	if err != nil {
		return fmt.Errorf("%s health: %w", c.def.ID, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s health: %w", c.def.ID, c.transportError(err))
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s health: %w", c.def.ID, connectors.Errorf(connectors.ClassUnavailable, "%s answered HTTP %d", c.def.Name, resp.StatusCode))
	}
	return nil
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, name string, ec connectors.ExecContext) (connectors.Result, error) {
	o := c.ops[name]
	if o == nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "%s has no operation %q", c.def.ID, name)
	}
	dec := json.NewDecoder(bytes.NewReader(ec.Payload))
	dec.UseNumber()
	var payload map[string]any
	if err := dec.Decode(&payload); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: want a JSON object")
	}
	if payload == nil {
		payload = map[string]any{}
	}
	if o.Pages != nil {
		return c.list(ctx, o, payload, ec.Credential)
	}
	data, ids, err := c.do(ctx, o, payload, nil, ec.Credential)
	if err != nil {
		return connectors.Result{}, err
	}
	v := data
	if o.ResultPath != "" {
		if v, err = extract(data, o.ResultPath); err != nil {
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "%s's answer lacks %s", c.def.Name, o.ResultPath)
		}
	}
	if id := idOf(v); id != "" && !slices.Contains(ids, id) {
		ids = append(ids, id)
	}
	return connectors.Result{Data: v, IDs: ids}, nil
}

// list follows a listing's cursor up to the items wanted.
func (c *Connector) list(ctx context.Context, o *op, payload map[string]any, cred connectors.Credential) (connectors.Result, error) {
	pg := *o.Pages
	if pg.PageSize <= 0 {
		pg.PageSize = 100
	}
	if pg.MaxItems <= 0 {
		pg.MaxItems = 1000
	}
	if pg.MaxPages <= 0 {
		pg.MaxPages = 50
	}
	want := pg.MaxItems
	if n, ok := payload["limit"].(json.Number); ok && o.props["limit"] {
		if i, err := n.Int64(); err == nil && i > 0 {
			want = int(min(i, int64(pg.MaxItems)))
		}
	}
	cursor := ""
	if s, ok := payload["cursor"].(string); ok && o.props["cursor"] {
		cursor = s
	}
	out := struct {
		Items      []json.RawMessage `json:"items"`
		Count      int               `json:"count"`
		NextCursor string            `json:"next_cursor,omitempty"`
	}{Items: []json.RawMessage{}}
	var ids []string
	seen := map[string]bool{cursor: true}
	for page := 0; page < pg.MaxPages; page++ {
		extra := url.Values{}
		if cursor != "" {
			extra.Set(pg.CursorParam, cursor)
		}
		if pg.LimitParam != "" {
			extra.Set(pg.LimitParam, fmt.Sprint(min(pg.PageSize, want-len(out.Items))))
		}
		data, _, err := c.do(ctx, o, payload, extra, cred)
		if err != nil {
			return connectors.Result{}, err
		}
		raw, err := extract(data, pg.ItemsPath)
		var items []json.RawMessage
		if err == nil {
			err = json.Unmarshal(raw, &items)
		}
		if err != nil {
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "%s's answer has no items array at %s", c.def.Name, pg.ItemsPath)
		}
		for _, it := range items {
			if len(out.Items) >= want {
				break
			}
			out.Items = append(out.Items, it)
			if id := idOf(it); id != "" {
				ids = append(ids, id)
			}
		}
		cursor = ""
		if raw, err := extract(data, pg.CursorPath); err == nil {
			cursor = scalarString(raw)
		}
		if cursor == "" || len(out.Items) >= want {
			break
		}
		if seen[cursor] {
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "%s repeated a cursor", c.def.Name)
		}
		seen[cursor] = true
	}
	out.NextCursor = cursor
	out.Count = len(out.Items)
	b, err := json.Marshal(out)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}

// do makes one call and returns the answer's JSON (the empty object for
// an empty answer) and the ids the path named.
func (c *Connector) do(ctx context.Context, o *op, payload map[string]any, extra url.Values, cred connectors.Credential) (json.RawMessage, []string, error) {
	path, ids, err := fillPath(o.Path, payload)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	for _, f := range o.Query {
		if err := addQuery(q, f, payload[f]); err != nil {
			return nil, nil, err
		}
	}
	for k, vs := range extra {
		q[k] = vs
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if o.Body == "json" {
		rest := map[string]any{}
		for k, v := range payload {
			if !o.skip[k] {
				rest[k] = v
			}
		}
		b, err := json.Marshal(rest)
		if err != nil {
			return nil, nil, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, o.method, u, body)
	if err != nil {
		return nil, nil, connectors.Errorf(connectors.ClassInvalid, "the request could not be built from the payload")
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.authenticate(req, cred); err != nil {
		return nil, nil, err
	}
	hc, err := c.client(cred)
	if err != nil {
		return nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, c.transportError(err)
	}
	if len(data) > maxBody {
		return nil, nil, connectors.Errorf(connectors.ClassUnavailable, "%s's answer exceeds %d bytes", c.def.Name, maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := c.statusError(resp.StatusCode, resp.Header)
		if cls := connectors.ClassOf(err); cls == connectors.ClassUnavailable || cls == connectors.ClassRateLimited {
			c.log.Warn("system failed", "operation", o.Name, "status", resp.StatusCode, "class", cls)
		}
		return nil, nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return json.RawMessage(`{}`), ids, nil
	}
	if !json.Valid(data) {
		return nil, nil, connectors.Errorf(connectors.ClassUnavailable, "%s's answer is not JSON", c.def.Name)
	}
	return data, ids, nil
}

// authenticate sets the request's credential as the definition says.
func (c *Connector) authenticate(req *http.Request, cred connectors.Credential) error {
	missing := func(what string) error {
		return connectors.Errorf(connectors.ClassUnauthorized, "the tenant's %s credential has no %s; its integration owner must connect it", c.def.Name, what)
	}
	switch c.def.Auth.Method {
	case "bearer":
		if cred.Token == "" {
			return missing("token")
		}
		req.Header.Set("Authorization", "Bearer "+cred.Token.Reveal())
	case "api-key-header":
		if cred.Token == "" {
			return missing("API key")
		}
		req.Header.Set(c.def.Auth.Header, cred.Token.Reveal())
	case "mtls":
		if cred.Values["certificate_pem"] == "" || cred.Values["private_key_pem"] == "" {
			return missing("client certificate")
		}
	case "basic":
		user, pass := cred.Values["username"], cred.Values["password"]
		if pass == "" {
			pass = cred.Token
		}
		if user == "" || pass == "" {
			return missing("username and password")
		}
		req.SetBasicAuth(user.Reveal(), pass.Reveal())
	}
	return nil
}

// fillPath fills the path's placeholders from the payload, path-escaped.
func fillPath(tmpl string, payload map[string]any) (string, []string, error) {
	var ids []string
	var ferr error
	out := placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		f := m[1 : len(m)-1]
		s, ok := scalar(payload[f])
		switch {
		case !ok || s == "":
			ferr = connectors.Errorf(connectors.ClassInvalid, "payload: %s must be a non-empty string, number or boolean", f)
		case s == "." || s == "..":
			ferr = connectors.Errorf(connectors.ClassInvalid, "payload: %s cannot be %q", f, s)
		}
		ids = append(ids, s)
		return url.PathEscape(s)
	})
	if ferr != nil {
		return "", nil, ferr
	}
	return out, ids, nil
}

// addQuery adds a payload field to the query: scalars once, arrays of
// scalars once per element; absent and null fields are left out.
func addQuery(q url.Values, f string, v any) error {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		for _, e := range v {
			s, ok := scalar(e)
			if !ok {
				return connectors.Errorf(connectors.ClassInvalid, "payload: %s must hold strings, numbers or booleans", f)
			}
			q.Add(f, s)
		}
		return nil
	}
	s, ok := scalar(v)
	if !ok {
		return connectors.Errorf(connectors.ClassInvalid, "payload: %s cannot be a query parameter", f)
	}
	q.Add(f, s)
	return nil
}

// scalar formats a JSON scalar (decoded with UseNumber).
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// extract returns the value at a dot path: object members by name, array
// elements by index.
func extract(data json.RawMessage, path string) (json.RawMessage, error) {
	cur := data
	for _, seg := range strings.Split(path, ".") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err == nil {
			v, ok := obj[seg]
			if !ok {
				return nil, fmt.Errorf("no %q", seg)
			}
			cur = v
			continue
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(cur, &arr); err != nil {
			return nil, fmt.Errorf("%q: not an object or array", seg)
		}
		i := -1
		fmt.Sscan(seg, &i)
		if i < 0 || i >= len(arr) || fmt.Sprint(i) != seg {
			return nil, fmt.Errorf("no element %q", seg)
		}
		cur = arr[i]
	}
	return cur, nil
}

// scalarString is a JSON string's or number's text; "" for anything else.
func scalarString(raw json.RawMessage) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return ""
	}
	s, _ := scalar(v)
	if _, isBool := v.(bool); isBool {
		return ""
	}
	return s
}

// idOf is the "id" member of a JSON object, if it is a string or number.
func idOf(raw json.RawMessage) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj["id"] == nil {
		return ""
	}
	return scalarString(obj["id"])
}

// statusError classifies a non-2xx answer by its status.
func (c *Connector) statusError(status int, h http.Header) error {
	e := &connectors.Error{Class: connectors.ClassInvalid, Detail: fmt.Sprintf("%s answered HTTP %d", c.def.Name, status)}
	switch {
	case status == http.StatusUnauthorized:
		e.Class = connectors.ClassUnauthorized
		e.Detail = fmt.Sprintf("%s refused the credential (HTTP 401); its integration owner must reconnect it", c.def.Name)
	case status == http.StatusNotFound || status == http.StatusGone:
		e.Class = connectors.ClassNotFound
	case status == http.StatusRequestTimeout:
		e.Class = connectors.ClassTimeout
	case status == http.StatusTooManyRequests:
		e.Class = connectors.ClassRateLimited
	case status >= 500 || status < 400:
		e.Class = connectors.ClassUnavailable
	}
	if d, ok := connectors.ParseRetryAfter(h.Get("Retry-After"), c.now()); ok && (e.Class == connectors.ClassRateLimited || e.Class == connectors.ClassUnavailable) {
		e.RetryAfter = d
	}
	return e
}

// transportError classifies a failure to get an answer.
func (c *Connector) transportError(err error) error {
	var to interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &to) && to.Timeout()) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: c.def.Name + " did not answer in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: c.def.Name + " could not be reached", Err: err}
}

// maxClients bounds the mTLS clients kept (one per client certificate).
const maxClients = 64

// client is the HTTP client for cred: the configured one, or for mTLS a
// copy of it presenting cred's client certificate, kept per certificate so
// connections are reused until the certificate is renewed.
func (c *Connector) client(cred connectors.Credential) (*http.Client, error) {
	if c.def.Auth.Method != "mtls" {
		return c.hc, nil
	}
	certPEM, keyPEM := cred.Values["certificate_pem"].Reveal(), cred.Values["private_key_pem"].Reveal()
	key := sha256.Sum256([]byte(certPEM))
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[key]; ok {
		return hc, nil
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, connectors.Errorf(connectors.ClassUnauthorized, "the relay's client certificate for %s is unusable; renew it", c.def.Name)
	}
	var base *http.Transport
	if t, ok := c.hc.Transport.(*http.Transport); ok {
		base = t.Clone()
	} else {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	if base.TLSClientConfig == nil {
		base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	base.TLSClientConfig.Certificates = []tls.Certificate{pair}
	hc := &http.Client{Transport: base, Timeout: c.hc.Timeout, CheckRedirect: c.hc.CheckRedirect}
	if c.clients == nil || len(c.clients) >= maxClients {
		for _, old := range c.clients {
			old.CloseIdleConnections()
		}
		c.clients = map[[32]byte]*http.Client{}
	}
	c.clients[key] = hc
	return hc, nil
}
