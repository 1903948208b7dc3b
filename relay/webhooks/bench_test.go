package webhooks

import (
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

var benchReport = flag.Bool("bench.report", false, "run TestWebhookReport: verifications/s and accepted events/s, printed as BENCH lines")

// TestWebhookReport prints BENCH lines (make bench): signature
// verifications per second per scheme on a 1 KiB body, and verified events
// accepted per second through the handler with their durable commit.
func TestWebhookReport(t *testing.T) {
	if !*benchReport {
		t.Skip("run with -args -bench.report")
	}
	for _, vc := range verifyCases() {
		r := testing.Benchmark(vc.run)
		fmt.Printf("BENCH webhook_verify_%s_rate %.0f verifications/s\n", vc.ep.Scheme, float64(r.N)/r.T.Seconds())
	}
	r := testing.Benchmark(BenchmarkAccept)
	fmt.Printf("BENCH webhook_accept_rate %.0f events/s\n", float64(r.N)/r.T.Seconds())
}

// BenchmarkVerify measures signature verification per scheme on a 1 KiB
// body, without the store.
func BenchmarkVerify(b *testing.B) {
	for _, vc := range verifyCases() {
		b.Run(vc.ep.Scheme, vc.run)
	}
}

// verifyCase is a signed 1 KiB request of one scheme.
type verifyCase struct {
	ep      Endpoint
	header  http.Header
	body    []byte
	now     time.Time
	secrets *hookSecrets
}

func verifyCases() []verifyCase {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"type":"event_callback","event_id":"Ev0001","event":{"text":"` + strings.Repeat("x", 1024-70) + `"}}`
	secrets := newHookSecrets()
	secrets.set(endpointKey{"asana", "acme"}, asanaSecret)
	mk := func(ep Endpoint, h http.Header) verifyCase {
		return verifyCase{ep: ep, header: h, body: []byte(body), now: now, secrets: secrets}
	}
	return []verifyCase{
		mk(Endpoint{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret}, http.Header{
			"X-Slack-Signature":         {"v0=" + hexMAC(slackSecret, "v0:"+ts+":"+body)},
			"X-Slack-Request-Timestamp": {ts},
		}),
		mk(Endpoint{System: "asana", Tenant: "acme", Scheme: SchemeAsana}, http.Header{
			"X-Hook-Signature": {hexMAC(asanaSecret, body)},
		}),
		mk(Endpoint{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken, Secret: workfrontSecret}, http.Header{
			"Authorization":         {"Bearer " + workfrontToken},
			"X-Workfront-Signature": {hexMAC(workfrontSecret, body)},
		}),
		mk(Endpoint{System: "hmac", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, TimestampHeader: "X-Timestamp"}, http.Header{
			"X-Signature": {"sha256=" + hexMAC(hmacSecret, ts+"."+body)},
			"X-Timestamp": {ts},
		}),
	}
}

func (vc verifyCase) run(b *testing.B) {
	ep, err := vc.ep.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	v := newVerifier(ep, vc.secrets)
	in := &inbound{header: vc.header, body: vc.body, now: vc.now}
	if vd := v.verify(in); vd.outcome != "" {
		b.Fatalf("the benchmark request does not verify: %s", vd.outcome)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(vc.body)))
	for b.Loop() {
		if vd := v.verify(in); vd.outcome != "" {
			b.Fatal(vd.outcome)
		}
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
