package webhooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// Headers of the HTTP subscriber's requests.
const (
	// DefaultSignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256(
	// secret, t + "." + body)>": the receiver recomputes it, compares in
	// constant time and refuses timestamps far from its clock.
	DefaultSignatureHeader = "X-Bridge-Signature"
	// EventIDHeader carries Event.ID, for receivers to drop duplicates
	// (delivery is at least once).
	EventIDHeader = "X-Bridge-Event-Id"
	// AttemptHeader carries Event.Attempt.
	AttemptHeader = "X-Bridge-Delivery-Attempt"
)

// HTTPSubscriberConfig configures an HTTPSubscriber. URL and Secret are
// required.
type HTTPSubscriberConfig struct {
	// URL receives the events, one POST each (http or https).
	URL string
	// Secret is the HMAC-SHA256 key of the signature header.
	Secret connectors.Secret
	// Header names the signature header. Empty means DefaultSignatureHeader.
	Header string
	// Client sends the requests. Nil means a client with a 30 s timeout.
	Client *http.Client
	// Now is the clock of the signed timestamp. Nil means time.Now.
	Now func() time.Time
}

// HTTPSubscriber is a Subscriber that POSTs each event as JSON to a URL:
//
//	{"id":..,"system":..,"tenant":..,"receivedAt":..,"contentType":..,"attempt":..,
//	 "body":<the webhook body when it is JSON>, "bodyBase64":<else, base64>}
//
// with a signature header of its own (DefaultSignatureHeader). A 2xx
// answer is success; 4xx other than 408, 425 and 429 is a permanent
// failure (the event goes to the dead-letter queue); anything else is
// retried.
type HTTPSubscriber struct {
	url    *url.URL
	where  string // the URL without userinfo, query or fragment, for errors
	mac    *macKey
	header string
	client *http.Client
	now    func() time.Time
}

// NewHTTPSubscriber validates cfg and returns the subscriber.
func NewHTTPSubscriber(cfg HTTPSubscriberConfig) (*HTTPSubscriber, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalidf("http subscriber: the URL must be an absolute http or https URL")
	}
	if cfg.Secret == "" {
		return nil, invalidf("http subscriber: the secret is required")
	}
	s := &HTTPSubscriber{
		url:    u,
		where:  (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		mac:    newMACKey(cfg.Secret),
		header: defaultString(cfg.Header, DefaultSignatureHeader),
		client: cfg.Client,
		now:    cfg.Now,
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// envelope is the JSON an HTTPSubscriber posts.
type envelope struct {
	Event
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 []byte          `json:"bodyBase64,omitempty"`
}

// Deliver posts ev. Errors name the URL without its query or credentials.
func (s *HTTPSubscriber) Deliver(ctx context.Context, ev Event) error {
	env := envelope{Event: ev}
	if json.Valid(ev.Body) {
		env.Body = ev.Body
	} else {
		env.BodyBase64 = ev.Body
	}
	body, err := json.Marshal(env)
	if err != nil {
		return Permanent(fmt.Errorf("deliver event %d: encode: %w", ev.ID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url.String(), bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("deliver event %d to %s: %w", ev.ID, s.where, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventIDHeader, strconv.FormatInt(ev.ID, 10))
	req.Header.Set(AttemptHeader, strconv.Itoa(ev.Attempt))
	req.Header.Set(s.header, s.Sign(s.now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL, query included: keep its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("deliver event %d to %s: %w", ev.ID, s.where, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooEarly && c != http.StatusTooManyRequests:
		return Permanent(fmt.Errorf("deliver event %d to %s: status %d", ev.ID, s.where, c))
	default:
		return fmt.Errorf("deliver event %d to %s: status %d", ev.ID, s.where, c)
	}
}

// Sign returns the signature header value of body sent at t.
func (s *HTTPSubscriber) Sign(t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var buf [sha256.Size]byte
	return "t=" + ts + ",v1=" + hex.EncodeToString(s.mac.sum(buf[:0], body, ts, "."))
}
