// Package sharepoint is the dispatcher's SharePoint Server connector. It
// answers from what the tenant's agents crawled into the relay's store
// (search, metadata, recent changes, stored content) and reaches
// SharePoint itself only through a connected agent, over the tunnel, for
// live file content. Agents serve only the sites they crawl, and only
// reads; this connector has no write operation.
//
// Documents are trimmed by the caller's tenant (always: the tenant comes
// from the caller's token) and by ACL: a caller sees a document only when
// one of its readers is the caller's e-mail address.
package sharepoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/store"
)

// ID is the connector's target system id.
const ID = "sharepoint"

// Store is what the connector reads of the relay's store (store.Store).
type Store interface {
	Search(ctx context.Context, tenant string, q store.SearchQuery) ([]store.Hit, error)
	Get(ctx context.Context, tenant string, k ingestapi.Key) (ingestapi.Document, error)
	Recent(ctx context.Context, tenant string, q store.RecentQuery) ([]ingestapi.Document, error)
	OpenBlob(ctx context.Context, tenant, sha256 string) (io.ReadCloser, int64, error)
	Stats(ctx context.Context, tenant string) (store.Stats, error)
}

// Agents reaches the tenants' connected agents through their tunnels.
type Agents interface {
	// Connected lists the ids of the tenant's connected agents.
	Connected(tenant string) []string
	// Do sends req (whose URL path and query are used) to the agent.
	Do(ctx context.Context, tenant, agent string, req *http.Request) (*http.Response, error)
}

// Config configures the connector. Store and Agents are required.
type Config struct {
	Store  Store
	Agents Agents
	// Logger receives errors. Nil means none.
	Logger *slog.Logger
}

// Connector is the SharePoint connector.
type Connector struct {
	st     Store
	agents Agents
	log    *slog.Logger
}

// New returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.Store == nil || cfg.Agents == nil {
		return nil, errors.New("sharepoint connector: a store and agents are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Connector{st: cfg.Store, agents: cfg.Agents, log: cfg.Logger}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "SharePoint Server (through the agent)" }

// AuthMethod implements connectors.Connector: the agent's mutual-TLS tunnel.
func (c *Connector) AuthMethod() string { return "mtls-tunnel" }

// HealthCheck implements connectors.Connector: healthy when one of the
// tenant's agents is connected and answers a ping through its tunnel.
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	agents := c.agents.Connected(tenant)
	if len(agents) == 0 {
		return connectors.Errorf(connectors.ClassAgentOffline, "no agent of tenant %s is connected", tenant)
	}
	var errs []error
	for _, a := range agents {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/ping", nil)
		resp, err := c.agents.Do(ctx, tenant, a, req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("agent %s: %s", a, resp.Status)
		}
		errs = append(errs, err)
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "no connected agent answered a ping", Err: errors.Join(errs...)}
}

// Resource implements dispatch.Resourcer: the site a payload names, for policies.
func (c *Connector) Resource(_ string, payload json.RawMessage) map[string]string {
	var p struct {
		Site string `json:"site"`
	}
	if json.Unmarshal(payload, &p) != nil || p.Site == "" {
		return nil
	}
	return map[string]string{"site": p.Site}
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opSearch:
		return c.search(ctx, ec)
	case opGet:
		return c.get(ctx, ec)
	case opChanges:
		return c.changes(ctx, ec)
	case opStatus:
		return c.status(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "no operation %q", op)
}

// principals are who the caller is in document ACLs: its e-mail address
// (or, without one, its user id, which matches a login at most).
func principals(u connectors.User) []string {
	if u.Email != "" {
		return []string{u.Email}
	}
	return []string{u.ID}
}

// visible reports whether one of d's readers is the caller.
func visible(d ingestapi.Document, u connectors.User) bool {
	for _, p := range principals(u) {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		for _, a := range d.ACL {
			if strings.ToLower(strings.TrimSpace(a.Email)) == p || strings.ToLower(strings.TrimSpace(a.Login)) == p {
				return true
			}
		}
	}
	return false
}

func (c *Connector) search(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	hits, err := c.st.Search(ctx, ec.Tenant, store.SearchQuery{Text: p.Query, Limit: p.Limit, Principals: principals(ec.User)})
	if err != nil {
		return connectors.Result{}, c.storeError("search", err)
	}
	out := struct {
		Hits  []hitView `json:"hits"`
		Count int       `json:"count"`
	}{Hits: []hitView{}}
	var ids []string
	for _, h := range hits {
		out.Hits = append(out.Hits, hitView{Document: view(h.Document), Score: h.Score, Snippet: h.Snippet})
		ids = append(ids, h.Document.Key.String())
	}
	out.Count = len(out.Hits)
	return jsonResult(out, ids)
}

func (c *Connector) get(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Site    string `json:"site"`
		ListID  string `json:"list_id"`
		ItemID  int    `json:"item_id"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	k := ingestapi.Key{Site: p.Site, ListID: strings.ToLower(strings.Trim(p.ListID, "{}")), ItemID: p.ItemID}
	d, err := c.st.Get(ctx, ec.Tenant, k)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return connectors.Result{}, connectors.Errorf(connectors.ClassNotFound, "no document %s", k)
	case err != nil:
		return connectors.Result{}, c.storeError("get", err)
	case !visible(d, ec.User):
		// Not visible reads as absent: the caller learns nothing of it.
		return connectors.Result{}, connectors.Errorf(connectors.ClassNotFound, "no document %s", k)
	}
	ids := []string{k.String()}
	switch p.Content {
	case "", "none":
		return jsonResult(struct {
			Document docView `json:"document"`
		}{view(d)}, ids)
	case "stored":
		if d.ContentSHA256 == "" {
			return connectors.Result{}, connectors.Errorf(connectors.ClassNotFound, "the relay keeps no content of %s (a folder, an item, or over the agent's size cap); ask for live content", d.Path)
		}
		body, size, err := c.st.OpenBlob(ctx, ec.Tenant, d.ContentSHA256)
		if err != nil {
			return connectors.Result{}, c.storeError("open content", err)
		}
		return connectors.Result{Body: body, Size: size, ContentType: d.ContentType, IDs: ids}, nil
	case "live":
		if d.Kind != "file" {
			return connectors.Result{}, connectors.Errorf(connectors.ClassNotFound, "%s is a %s, not a file", d.Path, d.Kind)
		}
		body, err := c.live(ctx, ec.Tenant, d)
		if err != nil {
			return connectors.Result{}, err
		}
		return connectors.Result{Body: body, Size: -1, ContentType: d.ContentType, IDs: ids}, nil
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "content: want none, stored or live")
}

// live fetches a file's current content through one of the tenant's
// agents: the first that serves the document's site.
func (c *Connector) live(ctx context.Context, tenant string, d ingestapi.Document) (io.ReadCloser, error) {
	agents := c.agents.Connected(tenant)
	if len(agents) == 0 {
		return nil, connectors.Errorf(connectors.ClassAgentOffline, "no agent of tenant %s is connected to read %s live", tenant, d.Path)
	}
	q := url.Values{"site": {d.Site}, "web": {d.WebURL}, "path": {d.Path}}
	var lastErr error
	for _, a := range agents {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/sharepoint/file?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.agents.Do(ctx, tenant, a, req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode == http.StatusOK {
			return resp.Body, nil
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			if lastErr == nil {
				lastErr = connectors.Errorf(connectors.ClassNotFound, "%s: %s", d.Path, strings.TrimSpace(string(msg)))
			}
			continue
		}
		lastErr = &connectors.Error{Class: connectors.ClassUnavailable, Detail: "the agent could not read the file from SharePoint",
			Err: fmt.Errorf("agent %s: %s: %s", a, resp.Status, strings.TrimSpace(string(msg)))}
	}
	if ce := (*connectors.Error)(nil); errors.As(lastErr, &ce) {
		return nil, lastErr
	}
	return nil, &connectors.Error{Class: connectors.ClassUnavailable, Detail: "no agent of the tenant could be reached", Err: lastErr}
}

func (c *Connector) changes(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Since time.Time `json:"since"`
		Site  string    `json:"site"`
		Limit int       `json:"limit"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	docs, err := c.st.Recent(ctx, ec.Tenant, store.RecentQuery{Since: p.Since, Site: p.Site, Limit: p.Limit, Principals: principals(ec.User)})
	if err != nil {
		return connectors.Result{}, c.storeError("recent changes", err)
	}
	out := struct {
		Documents []docView `json:"documents"`
		Count     int       `json:"count"`
	}{Documents: []docView{}}
	var ids []string
	for _, d := range docs {
		out.Documents = append(out.Documents, view(d))
		ids = append(ids, d.Key.String())
	}
	out.Count = len(out.Documents)
	return jsonResult(out, ids)
}

// agentStatus is one agent's crawl, as its /v1/crawl/status says.
type agentStatus struct {
	Agent string            `json:"agent"`
	Sites []json.RawMessage `json:"sites"`
	Error string            `json:"error,omitempty"`
}

func (c *Connector) status(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	st, err := c.st.Stats(ctx, ec.Tenant)
	if err != nil {
		return connectors.Result{}, c.storeError("stats", err)
	}
	out := struct {
		Agents []agentStatus `json:"agents"`
		Store  storeView     `json:"store"`
	}{Agents: []agentStatus{}, Store: storeView{Documents: st.Documents, Sites: st.Sites, Blobs: st.Blobs, BlobBytes: st.BlobBytes}}
	for _, a := range c.agents.Connected(ec.Tenant) {
		as := agentStatus{Agent: a, Sites: []json.RawMessage{}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/crawl/status", nil)
		resp, err := c.agents.Do(ctx, ec.Tenant, a, req)
		if err != nil {
			as.Error = "unreachable"
			out.Agents = append(out.Agents, as)
			continue
		}
		var body struct {
			Sites []json.RawMessage `json:"sites"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			as.Error = "no crawl status (" + resp.Status + ")"
		} else if body.Sites != nil {
			as.Sites = body.Sites
		}
		out.Agents = append(out.Agents, as)
	}
	return jsonResult(out, nil)
}

// storeError classifies a store failure: the store is the system here.
func (c *Connector) storeError(op string, err error) error {
	if errors.Is(err, store.ErrInvalid) {
		return &connectors.Error{Class: connectors.ClassInvalid, Detail: op + ": " + err.Error(), Err: err}
	}
	c.log.Error("store failed", "op", op, "err", err)
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "the relay's store failed", Err: err}
}

func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
