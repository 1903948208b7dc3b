package webhooks

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Problem type URIs of the endpoint's failures; senders branch on these,
// never on Detail.
const (
	// ProblemBase prefixes every problem type (as relay/dispatch's).
	ProblemBase = "https://mcc-bridge.dev/problems/"
	// ProblemUnverified: the request did not verify (401).
	ProblemUnverified = ProblemBase + "webhook-unverified"
	// ProblemUnknownEndpoint: no endpoint is configured for the path (404).
	ProblemUnknownEndpoint = ProblemBase + "unknown-webhook-endpoint"
	// ProblemBodyTooLarge: the body exceeds MaxBodyBytes (413).
	ProblemBodyTooLarge = ProblemBase + "body-too-large"
	// ProblemBadRequest: the body could not be read (400).
	ProblemBadRequest = ProblemBase + "invalid-request"
	// ProblemUnavailable: the event could not be stored; try again (503).
	ProblemUnavailable = ProblemBase + "webhook-unavailable"
)

// problem is an RFC 9457 problem details document. Its fields are fixed
// strings: never a header value, a body or a secret.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// unverifiedDetail says why a request was refused. Forged and tampered
// read the same: the sender need not learn which we saw.
func unverifiedDetail(o Outcome) string {
	switch o {
	case OutcomeMissing:
		return "a required signature, timestamp or token header is missing or malformed"
	case OutcomeStale:
		return "the signed timestamp is outside the accepted window"
	case OutcomeNoHandshake:
		return "the endpoint has no hook secret yet; create the webhook to handshake first"
	case OutcomeHandshakeRefused:
		return "the endpoint already has a hook secret"
	default:
		return "the signature or token does not match"
	}
}

// Handler returns the webhook endpoint: POST /webhooks/{system}/{tenant}.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{system}/{tenant}", h.serveWebhook)
	return mux
}

func (h *Hub) serveWebhook(w http.ResponseWriter, r *http.Request) {
	ep := endpointKey{r.PathValue("system"), r.PathValue("tenant")}
	v, ok := h.endpoints[ep]
	if !ok {
		h.metrics.request("unknown", OutcomeUnknownEndpoint)
		writeProblem(w, http.StatusNotFound, ProblemUnknownEndpoint, "Unknown webhook endpoint", "")
		return
	}
	if h.checkOpen() != nil {
		h.metrics.request(ep.system, OutcomeError)
		writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "Webhook endpoint unavailable", "the relay is shutting down")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.reject(r, ep, OutcomeTooLarge)
		writeProblem(w, http.StatusRequestEntityTooLarge, ProblemBodyTooLarge, "Body too large", "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(r, ep, OutcomeTooLarge)
			writeProblem(w, http.StatusRequestEntityTooLarge, ProblemBodyTooLarge, "Body too large", "")
			return
		}
		h.reject(r, ep, OutcomeError)
		writeProblem(w, http.StatusBadRequest, ProblemBadRequest, "Unreadable body", "")
		return
	}
	ctx := r.Context()
	now := h.cfg.Now()
	vd := v.verify(&inbound{header: r.Header, body: body, now: now})

	if vd.outcome == OutcomeForged && vd.sig != nil {
		k := sigKey(ep, vd.sig)
		switch seen, err := h.store.seen(ctx, k[:], now); {
		case err != nil:
			h.log.Warn("webhook signature lookup failed", "system", ep.system, "tenant", ep.tenant, "err", err)
		case seen:
			vd.outcome = OutcomeTampered
		}
	}
	if vd.outcome != "" {
		h.reject(r, ep, vd.outcome)
		writeProblem(w, http.StatusUnauthorized, ProblemUnverified, "Webhook not verified", unverifiedDetail(vd.outcome))
		return
	}

	switch {
	case vd.handshake != "":
		ok, err := h.storeSecret(ctx, ep, vd.handshake)
		if err != nil {
			h.fail(w, ep, err)
			return
		}
		if !ok {
			h.reject(r, ep, OutcomeHandshakeRefused)
			writeProblem(w, http.StatusUnauthorized, ProblemUnverified, "Webhook not verified", unverifiedDetail(OutcomeHandshakeRefused))
			return
		}
		h.metrics.request(ep.system, OutcomeHandshake)
		h.log.Info("asana webhook handshake accepted", "system", ep.system, "tenant", ep.tenant)
		w.Header().Set(asanaHandshakeHeader, vd.handshake.Reveal())
		w.WriteHeader(http.StatusOK)
		return
	case vd.challenge != "":
		h.metrics.request(ep.system, OutcomeChallenge)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, vd.challenge)
		return
	case vd.heartbeat:
		h.metrics.request(ep.system, OutcomeHeartbeat)
		w.WriteHeader(http.StatusOK)
		return
	}

	var sk []byte
	if vd.sig != nil {
		k := sigKey(ep, vd.sig)
		sk = k[:]
	}
	ev := Event{System: ep.system, Tenant: ep.tenant, ReceivedAt: now, ContentType: r.Header.Get("Content-Type"), Body: body}
	id, replayed, err := h.store.accept(ctx, vd.key[:], sk, ev, now.Add(ReplayWindow))
	if err != nil {
		h.fail(w, ep, err)
		return
	}
	if replayed {
		h.metrics.request(ep.system, OutcomeReplayed)
		h.log.Debug("webhook replay ignored", "system", ep.system, "tenant", ep.tenant)
		w.WriteHeader(http.StatusOK)
		return
	}
	h.metrics.request(ep.system, OutcomeAccepted)
	h.log.Debug("webhook accepted", "system", ep.system, "tenant", ep.tenant, "id", id, "bytes", len(body))
	h.signal()
	w.WriteHeader(http.StatusOK)
}

// reject counts and (rate-limited) logs a refused request. It logs no
// header value and no body.
func (h *Hub) reject(r *http.Request, ep endpointKey, o Outcome) {
	h.metrics.request(ep.system, o)
	h.rejections.Do(func() {
		h.log.Warn("webhook refused", "system", ep.system, "tenant", ep.tenant, "outcome", string(o), "remote", r.RemoteAddr)
	})
}

// fail answers 503 after a store failure, so that the vendor retries.
func (h *Hub) fail(w http.ResponseWriter, ep endpointKey, err error) {
	h.metrics.request(ep.system, OutcomeError)
	h.log.Error("webhook not stored", "system", ep.system, "tenant", ep.tenant, "err", err)
	w.Header().Set("Retry-After", strconv.Itoa(5))
	writeProblem(w, http.StatusServiceUnavailable, ProblemUnavailable, "Webhook endpoint unavailable", "the event could not be stored; retry later")
}

func writeProblem(w http.ResponseWriter, status int, typ, title, detail string) {
	hd := w.Header()
	hd.Set("Content-Type", "application/problem+json")
	hd.Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		hd.Set("WWW-Authenticate", `Signature realm="webhooks"`)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{Type: typ, Title: title, Status: status, Detail: detail})
}
