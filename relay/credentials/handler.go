package credentials

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// HandlerConfig configures the admin HTTP handler.
type HandlerConfig struct {
	// Authorize authenticates and authorizes an admin request and returns
	// the caller's tenant (the relay plugs its caller authentication and
	// policy in here). An error answers 401, or 403 when it wraps
	// ErrForbidden. Required. The OAuth callback does not call it: the
	// browser arriving there carries only the state, which is single-use
	// and bound to the tenant that started the authorization.
	Authorize func(r *http.Request) (tenant string, err error)
	// RedirectURL is the public URL of GET /v1/oauth/callback, registered
	// at every provider. Required.
	RedirectURL string
	// Subject, when set, names who is authorizing a connection (recorded
	// as its Subject), from the request Authorize accepted.
	Subject func(r *http.Request) string
	// Logger receives the handler's logs; nil means the Manager's.
	Logger *slog.Logger
}

// Handler serves the admin API of connections:
//
//	POST   /v1/connections/{system}/authorize  -> 200 {"authorizationUrl": "..."}
//	GET    /v1/oauth/callback?state=&code=     -> 200 the connection (the provider's redirect)
//	GET    /v1/connections                     -> 200 {"connections": [...]}
//	GET    /v1/connections/{system}            -> 200 the connection
//	DELETE /v1/connections/{system}            -> 200 the revoked connection
//
// Errors are RFC 9457 problem documents. Responses never carry a secret.
type Handler struct {
	m   *Manager
	cfg HandlerConfig
	log *slog.Logger
	mux *http.ServeMux
}

// NewHandler returns the admin handler of m.
func NewHandler(m *Manager, cfg HandlerConfig) (*Handler, error) {
	if cfg.Authorize == nil {
		return nil, fmt.Errorf("credentials handler: %w: Authorize is required", ErrConfig)
	}
	if err := checkHTTPURL(cfg.RedirectURL); err != nil {
		return nil, fmt.Errorf("credentials handler: %w: RedirectURL: %w", ErrConfig, err)
	}
	h := &Handler{m: m, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = m.log
	}
	h.mux.HandleFunc("POST /v1/connections/{system}/authorize", h.authorize)
	h.mux.HandleFunc("GET /v1/oauth/callback", h.callback)
	h.mux.HandleFunc("GET /v1/connections", h.list)
	h.mux.HandleFunc("GET /v1/connections/{system}", h.get)
	h.mux.HandleFunc("DELETE /v1/connections/{system}", h.revoke)
	return h, nil
}

// ServeHTTP routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) tenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	t, err := h.cfg.Authorize(r)
	if err == nil && t == "" {
		err = errors.New("no tenant")
	}
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrForbidden) {
			status = http.StatusForbidden
		}
		h.log.Info("admin request refused", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, status, http.StatusText(status), "")
		return "", false
	}
	return t, true
}

func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) {
	tenant, ok := h.tenant(w, r)
	if !ok {
		return
	}
	subject := ""
	if h.cfg.Subject != nil {
		subject = h.cfg.Subject(r)
	}
	u, err := h.m.StartAuthorizationAs(r.Context(), tenant, r.PathValue("system"), h.cfg.RedirectURL, subject)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"authorizationUrl": u})
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		// The owner declined (or the provider failed): consume the state.
		h.m.dropState(r.Context(), q.Get("state"))
		writeProblem(w, http.StatusBadRequest, "Authorization refused",
			fmt.Sprintf("the provider answered %s; start the authorization again", sanitizeCode(e)))
		return
	}
	c, err := h.m.CompleteAuthorization(r.Context(), q.Get("state"), q.Get("code"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	tenant, ok := h.tenant(w, r)
	if !ok {
		return
	}
	cs, err := h.m.List(r.Context(), tenant)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": cs})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	tenant, ok := h.tenant(w, r)
	if !ok {
		return
	}
	c, err := h.m.Get(r.Context(), tenant, r.PathValue("system"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	tenant, ok := h.tenant(w, r)
	if !ok {
		return
	}
	c, err := h.m.Revoke(r.Context(), tenant, r.PathValue("system"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// fail answers err; details are this package's messages, which never
// carry a secret.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeProblem(w, http.StatusNotFound, "Connection not found", err.Error())
	case errors.Is(err, ErrUnknownSystem):
		writeProblem(w, http.StatusNotFound, "Unknown system", err.Error())
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrInvalidState), errors.Is(err, ErrStateExpired):
		writeProblem(w, http.StatusBadRequest, "Invalid request", err.Error())
	case errors.Is(err, ErrExchange):
		writeProblem(w, http.StatusBadGateway, "Authorization failed", err.Error())
	default:
		h.log.Error("admin request failed", "err", err)
		writeProblem(w, http.StatusInternalServerError, "Internal error", "")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{title, status, detail})
}
