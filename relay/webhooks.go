package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/webhooks"
)

// WebhooksConfig is the webhooks section: inbound webhooks of the SaaS
// systems, served on the API at POST /webhooks/{system}/{tenant}, queued
// durably and delivered to subscribers. Off while Endpoints is empty.
type WebhooksConfig struct {
	// Dir holds webhooks.db (the queue, replay keys, Asana hook secrets).
	// Default "webhooks".
	Dir string `yaml:"dir"`
	// Endpoints are the accepted webhooks, one per (system, tenant).
	Endpoints []WebhookEndpointConfig `yaml:"endpoints"`
	// Subscribers receive the accepted events of a system over HTTP.
	Subscribers []WebhookSubscriberConfig `yaml:"subscribers"`
	// MaxAttempts is how often an event is offered before it goes to the
	// dead-letter queue. Default 8.
	MaxAttempts int `yaml:"max_attempts"`
}

// WebhookEndpointConfig is one webhook endpoint. Secrets come from files,
// never from the configuration itself.
type WebhookEndpointConfig struct {
	System string `yaml:"system"`
	Tenant string `yaml:"tenant"`
	// Scheme is slack, asana, workfront or hmac.
	Scheme string `yaml:"scheme"`
	// SecretFile holds the signing secret (slack, hmac; workfront's
	// optional X-Workfront-Signature key).
	SecretFile string `yaml:"secret_file"`
	// AuthTokenFile holds Workfront's subscription authToken.
	AuthTokenFile string `yaml:"auth_token_file"`
	// Header, TimestampHeader and Window tune the hmac scheme; AuthHeader
	// names Workfront's token header (default Authorization).
	Header          string        `yaml:"header"`
	TimestampHeader string        `yaml:"timestamp_header"`
	Window          time.Duration `yaml:"window"`
	AuthHeader      string        `yaml:"auth_header"`
}

// WebhookSubscriberConfig posts a system's events to a URL, signed with
// the secret in SecretFile.
type WebhookSubscriberConfig struct {
	System     string `yaml:"system"`
	URL        string `yaml:"url"`
	SecretFile string `yaml:"secret_file"`
}

func (c *WebhooksConfig) enabled() bool { return len(c.Endpoints) > 0 }

func (c *WebhooksConfig) paths() []*string {
	out := []*string{&c.Dir}
	for i := range c.Endpoints {
		out = append(out, &c.Endpoints[i].SecretFile, &c.Endpoints[i].AuthTokenFile)
	}
	for i := range c.Subscribers {
		out = append(out, &c.Subscribers[i].SecretFile)
	}
	return out
}

// readSecret reads a secret file (trailing newline trimmed); "" reads nothing.
func readSecret(path string) (connectors.Secret, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return connectors.Secret(strings.TrimRight(string(b), "\r\n")), nil
}

// openWebhooks opens the hub with its endpoints and subscribers.
func openWebhooks(ctx context.Context, c WebhooksConfig, reg prometheus.Registerer, log *slog.Logger) (*webhooks.Hub, error) {
	var eps []webhooks.Endpoint
	var errs []error
	for i, e := range c.Endpoints {
		secret, err := readSecret(e.SecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].secret_file: %w", i, err))
		}
		token, err := readSecret(e.AuthTokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d].auth_token_file: %w", i, err))
		}
		eps = append(eps, webhooks.Endpoint{System: e.System, Tenant: e.Tenant, Scheme: e.Scheme, Secret: secret,
			Header: e.Header, TimestampHeader: e.TimestampHeader, Window: e.Window, AuthToken: token, AuthHeader: e.AuthHeader})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	hub, err := webhooks.Open(ctx, webhooks.Config{Dir: c.Dir, Endpoints: eps, MaxAttempts: c.MaxAttempts,
		Logger: log.With("part", "webhooks"), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	for i, s := range c.Subscribers {
		secret, err := readSecret(s.SecretFile)
		if err == nil {
			var sub *webhooks.HTTPSubscriber
			if sub, err = webhooks.NewHTTPSubscriber(webhooks.HTTPSubscriberConfig{URL: s.URL, Secret: secret}); err == nil {
				hub.Subscribe(s.System, sub)
			}
		}
		if err != nil {
			hub.Close()
			return nil, fmt.Errorf("webhooks.subscribers[%d]: %w", i, err)
		}
	}
	return hub, nil
}
