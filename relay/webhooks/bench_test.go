package webhooks

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify measures signature verification per scheme on a 1 KiB
// body, without the store.
func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"type":"event_callback","event_id":"Ev0001","event":{"text":"` + strings.Repeat("x", 1024-70) + `"}}`
	secrets := newHookSecrets()
	secrets.set(endpointKey{"asana", "acme"}, asanaSecret)
	tests := []struct {
		ep     Endpoint
		header http.Header
	}{
		{Endpoint{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret}, http.Header{
			"X-Slack-Signature":         {"v0=" + hexMAC(slackSecret, "v0:"+ts+":"+body)},
			"X-Slack-Request-Timestamp": {ts},
		}},
		{Endpoint{System: "asana", Tenant: "acme", Scheme: SchemeAsana}, http.Header{
			"X-Hook-Signature": {hexMAC(asanaSecret, body)},
		}},
		{Endpoint{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken, Secret: workfrontSecret}, http.Header{
			"Authorization":         {"Bearer " + workfrontToken},
			"X-Workfront-Signature": {hexMAC(workfrontSecret, body)},
		}},
		{Endpoint{System: "hmac", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, TimestampHeader: "X-Timestamp"}, http.Header{
			"X-Signature": {"sha256=" + hexMAC(hmacSecret, ts+"."+body)},
			"X-Timestamp": {ts},
		}},
	}
	for _, tc := range tests {
		b.Run(tc.ep.Scheme, func(b *testing.B) {
			ep, err := tc.ep.withDefaults()
			if err != nil {
				b.Fatal(err)
			}
			v := newVerifier(ep, secrets)
			in := &inbound{header: tc.header, body: []byte(body), now: now}
			if vd := v.verify(in); vd.outcome != "" {
				b.Fatalf("the benchmark request does not verify: %s", vd.outcome)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if vd := v.verify(in); vd.outcome != "" {
					b.Fatal(vd.outcome)
				}
			}
		})
	}
}

// BenchmarkAccept measures a verified event through the handler, committed
// to the store (synchronous FULL: one fsync per event).
func BenchmarkAccept(b *testing.B) {
	th := openHub(b, Config{Endpoints: []Endpoint{{System: "github", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret}}})
	h := th.Handler()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := `{"n":` + strconv.Itoa(i) + `}`
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, post("/webhooks/github/acme", body, "X-Signature", "sha256="+hexMAC(hmacSecret, body)))
		if w.code != 200 {
			b.Fatalf("got %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
