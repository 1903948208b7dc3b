package webhooks

import (
	"net/http"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary headers and bodies to every scheme: nothing
// panics, and nothing unsigned verifies.
func FuzzVerify(f *testing.F) {
	f.Add("v0=00", "1772366400", []byte(`{"type":"url_verification","challenge":"x"}`))
	f.Add("sha256=", "", []byte(`{"events":[]}`))
	f.Add("Bearer x", "-1", []byte{0xff, '{'})
	f.Add("", "99999999999999999999", []byte(`{"event_id":`))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	secrets := newHookSecrets()
	secrets.set(endpointKey{"asana", "acme"}, asanaSecret)
	var vs []verifier
	for _, ep := range []Endpoint{
		{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret},
		{System: "asana", Tenant: "acme", Scheme: SchemeAsana},
		{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken, Secret: workfrontSecret},
		{System: "hmac", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, TimestampHeader: "X-Timestamp"},
		{System: "hmac", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret},
	} {
		ep, err := ep.withDefaults()
		if err != nil {
			f.Fatal(err)
		}
		vs = append(vs, newVerifier(ep, secrets))
	}
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		h := http.Header{}
		for _, k := range []string{"X-Slack-Signature", "X-Hook-Signature", "X-Workfront-Signature", "X-Signature", "Authorization"} {
			h.Set(k, sig)
		}
		h.Set("X-Slack-Request-Timestamp", ts)
		h.Set("X-Timestamp", ts)
		for _, v := range vs {
			if vd := v.verify(&inbound{header: h, body: body, now: now}); vd.outcome == "" {
				t.Errorf("%T verified an unsigned request: sig %q ts %q body %q", v, sig, ts, body)
			}
		}
		parseSlack(body)
		asanaHeartbeat(body)
	})
}
