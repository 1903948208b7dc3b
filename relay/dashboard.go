package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/pki/renew"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dashboard"
)

// serveStatus is GET /status on the ops server: the health dashboard for
// browsers (and ?format=html, fragment or json, the dashboard's own
// representations), the relay's Status as JSON for everything else.
func (r *Relay) serveStatus(dash http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("format") != "" || strings.Contains(req.Header.Get("Accept"), "text/html") {
			dash.ServeHTTP(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r.Status())
	}
}

// dashboardSnapshot is what the dashboard shows: calls per system (from
// the dispatcher), certificates, and the connected agents with what their
// tenants have stored.
func (r *Relay) dashboardSnapshot(ctx context.Context) dashboard.Snapshot {
	now := time.Now()
	s := dashboard.Snapshot{Relay: r.id, Version: r.version, Uptime: now.Sub(r.started), Now: now}
	if r.api != nil {
		s.Systems = r.api.recorder.Systems(now)
	}
	if r.pki != nil {
		st := r.pki.renewer.Status()
		c := dashboard.Credential{Name: "relay certificate (" + st.Subject + ")", Kind: dashboard.KindCertificate, ExpiresAt: st.NotAfter}
		switch {
		case st.State == renew.StateReenroll:
			c.State = dashboard.StateReenrollmentNeeded
		case now.After(st.NotAfter):
			c.State = dashboard.StateExpired
		case st.NotAfter.Sub(now) < 24*time.Hour && !st.NextRenewal.IsZero() && now.After(st.NextRenewal):
			c.State = dashboard.StateExpiring
		default:
			c.State = dashboard.StateOK
		}
		s.Credentials = append(s.Credentials, c)
	}
	s.Credentials = append(s.Credentials, r.connectionRows(ctx, now)...)
	docs := map[string]string{}
	for _, a := range r.server.Agents() {
		da := dashboard.Agent{Tenant: a.Tenant, Agent: a.Agent, Sessions: len(a.Sessions)}
		for i, l := range a.Sessions {
			if i == 0 || l.Since.Before(da.ConnectedSince) {
				da.ConnectedSince = l.Since
			}
			if !strings.Contains(da.Transport, string(l.Transport)) {
				if da.Transport != "" {
					da.Transport += "+"
				}
				da.Transport += string(l.Transport)
			}
		}
		if _, ok := docs[a.Tenant]; !ok {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if st, err := r.store.Stats(sctx, a.Tenant); err == nil {
				docs[a.Tenant] = fmt.Sprintf("%d documents stored for %s, over %d sites", st.Documents, a.Tenant, st.Sites)
			}
			cancel()
		}
		da.Crawl = docs[a.Tenant]
		s.Agents = append(s.Agents, da)
	}
	return s
}

// connectionRows lists the credential manager's connections of every
// tenant that has policies or a connected agent: name, expiry and state,
// never a secret.
func (r *Relay) connectionRows(ctx context.Context, now time.Time) []dashboard.Credential {
	if r.api == nil || r.api.creds == nil {
		return nil
	}
	tenants := map[string]bool{}
	for _, t := range r.api.policies.Tenants() {
		tenants[t] = true
	}
	for _, a := range r.server.Agents() {
		tenants[a.Tenant] = true
	}
	var rows []dashboard.Credential
	for _, t := range slices.Sorted(maps.Keys(tenants)) {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conns, err := r.api.creds.List(lctx, t)
		cancel()
		if err != nil {
			continue
		}
		for _, c := range conns {
			row := dashboard.Credential{Name: fmt.Sprintf("%s %s (%s)", c.System, c.Method, t), Kind: dashboard.KindOAuth, Tenant: t, ExpiresAt: c.Expires}
			if c.Expires.IsZero() && !c.RotateBy.IsZero() {
				row.ExpiresAt = c.RotateBy
			}
			switch c.State {
			case credentials.StateExpired, credentials.StateAlert, credentials.StateRevoked:
				row.State = dashboard.StateExpired
			case credentials.StateInitial:
				row.State = dashboard.StateExpiring
			default:
				row.State = dashboard.StateOK
				if !row.ExpiresAt.IsZero() && row.ExpiresAt.Sub(now) < 15*time.Minute {
					row.State = dashboard.StateExpiring
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}
