package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed dashboard.html dashboard.css dashboard.js
var assets embed.FS

// Representations Handler serves, chosen with ?format= or by Accept.
const (
	formatHTML     = "html"
	formatJSON     = "json"
	formatFragment = "fragment" // the panels alone, for the page's refresh
)

// handler serves the dashboard; see Handler.
type handler struct {
	snapshot func(ctx context.Context) Snapshot
	tmpl     *template.Template
	style    template.CSS
	script   template.JS
	csp      string
}

// Handler returns an http.Handler that serves the dashboard at any path it
// is mounted on. It answers GET and HEAD:
//
//   - ?format=json, or an Accept header without text/html: the Snapshot as
//     JSON (Go field semantics; durations in nanoseconds);
//   - ?format=html, or an Accept header that takes text/html at least as
//     readily as JSON: the page, which refreshes its panels every 5 s from
//     ?format=fragment and shows when they are stale.
//
// snapshot, which must not be nil, is called once per request with the
// request's context; a zero Snapshot.Now is replaced with time.Now.
func Handler(snapshot func(ctx context.Context) Snapshot) http.Handler {
	// The template and assets are compiled in: failing to parse them is a
	// programming error that every test run catches.
	tmpl := template.Must(template.New("dashboard").ParseFS(assets, "dashboard.html"))
	css := mustRead("dashboard.css")
	js := mustRead("dashboard.js")
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src " + hashSource(js),
		"style-src " + hashSource(css),
		"connect-src 'self'",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return &handler{
		snapshot: snapshot,
		tmpl:     tmpl,
		style:    template.CSS(css),
		script:   template.JS(js),
		csp:      csp,
	}
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	format, err := negotiate(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	snap := h.snapshot(r.Context())
	if snap.Now.IsZero() {
		snap.Now = time.Now()
	}

	var body bytes.Buffer
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Add("Vary", "Accept")
	switch format {
	case formatJSON:
		if err := json.NewEncoder(&body).Encode(normalize(snap)); err != nil {
			http.Error(w, fmt.Sprintf("encoding the snapshot: %v", err), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json; charset=utf-8")
	default:
		v := newView(snap)
		v.Style, v.Script = h.style, h.script
		name := "page"
		if format == formatFragment {
			name = "panels"
		}
		if err := h.tmpl.ExecuteTemplate(&body, name, v); err != nil {
			http.Error(w, fmt.Sprintf("rendering the dashboard: %v", err), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Security-Policy", h.csp)
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Frame-Options", "DENY")
	}
	hdr.Set("Content-Length", strconv.Itoa(body.Len()))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = body.WriteTo(w) // a client that went away is not our error
}

// negotiate picks the representation for r: ?format= wins; otherwise HTML
// when Accept takes text/html (or application/xhtml+xml) with a quality at
// least that of application/json, and JSON in every other case.
func negotiate(r *http.Request) (string, error) {
	switch f := r.URL.Query().Get("format"); f {
	case formatHTML, formatJSON, formatFragment:
		return f, nil
	case "":
	default:
		return "", fmt.Errorf("unknown format %q: want html, json or fragment", f)
	}
	var qHTML, qJSON float64
	for _, part := range strings.Split(strings.Join(r.Header.Values("Accept"), ","), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(s, 64); err != nil {
				continue
			}
		}
		switch mt {
		case "text/html", "application/xhtml+xml":
			qHTML = max(qHTML, q)
		case "application/json":
			qJSON = max(qJSON, q)
		}
	}
	if qHTML > 0 && qHTML >= qJSON {
		return formatHTML, nil
	}
	return formatJSON, nil
}

// normalize returns s with empty lists instead of nil ones, so that JSON
// clients always see arrays.
func normalize(s Snapshot) Snapshot {
	if s.Systems == nil {
		s.Systems = []SystemStats{}
	}
	if s.Credentials == nil {
		s.Credentials = []Credential{}
	}
	if s.Agents == nil {
		s.Agents = []Agent{}
	}
	return s
}

// mustRead returns an embedded asset.
func mustRead(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("dashboard: reading embedded %s: %v", name, err))
	}
	return string(b)
}

// hashSource is the CSP source expression that allows exactly the inline
// script or style s.
func hashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}
