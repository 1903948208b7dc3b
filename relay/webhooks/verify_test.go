package webhooks

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// step is one request of a scheme case.
type step struct {
	advance time.Duration // clock advance before the request
	req     func(now time.Time) *http.Request
	status  int
	outcome Outcome
	check   func(t *testing.T, w *httptest.ResponseRecorder) // optional
}

// schemeCase is a sequence of requests to one endpoint of a fresh Hub.
type schemeCase struct {
	name   string
	ep     Endpoint
	steps  []step
	queued int // events queued at the end
}

func runSchemeCases(t *testing.T, cases []schemeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			th := openHub(t, Config{Endpoints: []Endpoint{tc.ep}, Now: clock.Now})
			want := map[Outcome]float64{}
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				w := th.do(s.req(clock.Now()))
				if w.Code != s.status {
					t.Fatalf("step %d: got status %d (%s), want %d", i, w.Code, w.Body, s.status)
				}
				want[s.outcome]++
				if got := th.requests(t, tc.ep.System, s.outcome); got != want[s.outcome] {
					t.Errorf("step %d: got %v requests with outcome %s, want %v", i, got, s.outcome, want[s.outcome])
				}
				if w.Code >= 400 {
					if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
						t.Errorf("step %d: got Content-Type %q, want application/problem+json", i, ct)
					}
					noSecrets(t, "problem body", w.Body.String())
					for _, v := range s.req(clock.Now()).Header {
						if len(v[0]) > 8 && strings.Contains(w.Body.String(), v[0]) {
							t.Errorf("step %d: problem body echoes a header value: %s", i, w.Body)
						}
					}
				}
				if s.check != nil {
					s.check(t, w)
				}
			}
			if got := th.countEvents(t, stateQueued); got != tc.queued {
				t.Errorf("got %d queued events, want %d", got, tc.queued)
			}
			noSecrets(t, "logs", th.logs.String())
		})
	}
}

func TestVerifySlack(t *testing.T) {
	ep := Endpoint{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret}
	const path = "/webhooks/slack/acme"
	const event = `{"type":"event_callback","event_id":"Ev0001","event":{"type":"message","text":"hi"}}`
	signed := func(secret, ts, body string) *http.Request {
		return post(path, body, "X-Slack-Signature", "v0="+hexMAC(secret, "v0:"+ts+":"+body), "X-Slack-Request-Timestamp", ts)
	}
	valid := func(body string) func(time.Time) *http.Request {
		return func(now time.Time) *http.Request { return signed(slackSecret, unix(now), body) }
	}
	accepted := step{req: valid(event), status: 200, outcome: OutcomeAccepted}
	cases := []schemeCase{
		{name: "valid", ep: ep, queued: 1, steps: []step{accepted}},
		{name: "valid form body", ep: ep, queued: 1, steps: []step{
			{req: valid("token=x&command=%2Fbridge&text=hello"), status: 200, outcome: OutcomeAccepted},
		}},
		{name: "url verification", ep: ep, steps: []step{{
			req:    valid(`{"token":"t","challenge":"chal-3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`),
			status: 200, outcome: OutcomeChallenge,
			check: func(t *testing.T, w *httptest.ResponseRecorder) {
				if got, want := w.Body.String(), "chal-3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"; got != want {
					t.Errorf("got challenge %q, want %q", got, want)
				}
			},
		}}},
		{name: "url verification forged", ep: ep, steps: []step{{
			req: func(now time.Time) *http.Request {
				return signed("wrong", unix(now), `{"type":"url_verification","challenge":"c"}`)
			},
			status: 401, outcome: OutcomeForged,
		}}},
		{name: "forged signature", ep: ep, steps: []step{{
			req:    func(now time.Time) *http.Request { return signed("not-the-secret", unix(now), event) },
			status: 401, outcome: OutcomeForged,
		}}},
		{name: "malformed signature", ep: ep, steps: []step{{
			req: func(now time.Time) *http.Request {
				return post(path, event, "X-Slack-Signature", "v0=zz", "X-Slack-Request-Timestamp", unix(now))
			},
			status: 401, outcome: OutcomeForged,
		}}},
		{name: "stale timestamp", ep: ep, steps: []step{{
			req:    func(now time.Time) *http.Request { return signed(slackSecret, unix(now.Add(-6*time.Minute)), event) },
			status: 401, outcome: OutcomeStale,
		}}},
		{name: "future timestamp", ep: ep, steps: []step{{
			req:    func(now time.Time) *http.Request { return signed(slackSecret, unix(now.Add(6*time.Minute)), event) },
			status: 401, outcome: OutcomeStale,
		}}},
		{name: "timestamp inside window", ep: ep, queued: 1, steps: []step{{
			req:    func(now time.Time) *http.Request { return signed(slackSecret, unix(now.Add(-4*time.Minute)), event) },
			status: 200, outcome: OutcomeAccepted,
		}}},
		{name: "replayed", ep: ep, queued: 1, steps: []step{
			accepted,
			{advance: time.Second, req: func(now time.Time) *http.Request {
				return signed(slackSecret, unix(now.Add(-time.Second)), event) // the same request again
			}, status: 200, outcome: OutcomeReplayed},
		}},
		{name: "slack retry of the same event_id", ep: ep, queued: 1, steps: []step{
			accepted,
			{advance: time.Minute, req: func(now time.Time) *http.Request {
				r := signed(slackSecret, unix(now), event)
				r.Header.Set("X-Slack-Retry-Num", "1")
				return r
			}, status: 200, outcome: OutcomeReplayed},
		}},
		{name: "same event after the replay window", ep: ep, queued: 2, steps: []step{
			accepted,
			{advance: ReplayWindow + time.Hour, req: valid(event), status: 200, outcome: OutcomeAccepted},
		}},
		{name: "tampered body", ep: ep, queued: 1, steps: []step{
			accepted,
			{req: func(now time.Time) *http.Request {
				r := signed(slackSecret, unix(now), event)
				r2 := post(path, strings.Replace(event, "hi", "rm -rf", 1))
				r2.Header = r.Header
				return r2
			}, status: 401, outcome: OutcomeTampered},
		}},
		{name: "tampered timestamp", ep: ep, queued: 1, steps: []step{
			accepted,
			{advance: 10 * time.Minute, req: func(now time.Time) *http.Request {
				r := signed(slackSecret, unix(now.Add(-10*time.Minute)), event)
				r.Header.Set("X-Slack-Request-Timestamp", unix(now))
				return r
			}, status: 401, outcome: OutcomeTampered},
		}},
		{name: "altered body never accepted before", ep: ep, steps: []step{{
			req: func(now time.Time) *http.Request {
				r := signed(slackSecret, unix(now), event)
				r2 := post(path, event+" ")
				r2.Header = r.Header
				return r2
			}, status: 401, outcome: OutcomeForged,
		}}},
		{name: "missing signature", ep: ep, steps: []step{{
			req:    func(now time.Time) *http.Request { return post(path, event, "X-Slack-Request-Timestamp", unix(now)) },
			status: 401, outcome: OutcomeMissing,
		}}},
		{name: "missing timestamp", ep: ep, steps: []step{{
			req: func(now time.Time) *http.Request {
				return post(path, event, "X-Slack-Signature", "v0="+hexMAC(slackSecret, "v0::"+event))
			},
			status: 401, outcome: OutcomeMissing,
		}}},
		{name: "non-numeric timestamp", ep: ep, steps: []step{{
			req:    func(now time.Time) *http.Request { return signed(slackSecret, "yesterday", event) },
			status: 401, outcome: OutcomeMissing,
		}}},
	}
	runSchemeCases(t, cases)
}

func TestVerifyAsana(t *testing.T) {
	ep := Endpoint{System: "asana", Tenant: "acme", Scheme: SchemeAsana}
	const path = "/webhooks/asana/acme"
	const event = `{"events":[{"action":"changed","resource":{"gid":"1201","resource_type":"task"},"created_at":"2026-03-01T12:00:00.000Z"}]}`
	signed := func(secret, body string) func(time.Time) *http.Request {
		return func(time.Time) *http.Request { return post(path, body, "X-Hook-Signature", hexMAC(secret, body)) }
	}
	handshake := step{
		req:    func(time.Time) *http.Request { return post(path, "", "X-Hook-Secret", asanaSecret) },
		status: 200, outcome: OutcomeHandshake,
		check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if got := w.Header().Get("X-Hook-Secret"); got != asanaSecret {
				t.Errorf("handshake echoed X-Hook-Secret %q, want the secret sent", got)
			}
		},
	}
	accepted := step{req: signed(asanaSecret, event), status: 200, outcome: OutcomeAccepted}
	cases := []schemeCase{
		{name: "handshake then valid", ep: ep, queued: 1, steps: []step{handshake, accepted}},
		{name: "repeated handshake with the same secret", ep: ep, steps: []step{handshake, handshake}},
		{name: "handshake with another secret refused", ep: ep, queued: 1, steps: []step{handshake,
			{req: func(time.Time) *http.Request { return post(path, "", "X-Hook-Secret", "attacker-secret") },
				status: 401, outcome: OutcomeHandshakeRefused,
				check: func(t *testing.T, w *httptest.ResponseRecorder) {
					if got := w.Header().Get("X-Hook-Secret"); got != "" {
						t.Errorf("refused handshake echoed X-Hook-Secret %q", got)
					}
				}},
			accepted, // the stored secret still rules
		}},
		{name: "heartbeat", ep: ep, steps: []step{handshake,
			{req: signed(asanaSecret, `{"events":[]}`), status: 200, outcome: OutcomeHeartbeat},
		}},
		{name: "event before handshake", ep: ep, steps: []step{
			{req: signed(asanaSecret, event), status: 401, outcome: OutcomeNoHandshake},
		}},
		{name: "forged signature", ep: ep, steps: []step{handshake,
			{req: signed("other-secret", event), status: 401, outcome: OutcomeForged},
		}},
		{name: "malformed signature", ep: ep, steps: []step{handshake,
			{req: func(time.Time) *http.Request { return post(path, event, "X-Hook-Signature", "sha256=abc") },
				status: 401, outcome: OutcomeForged},
		}},
		// Asana signs no timestamp: there is no stale case.
		{name: "replayed", ep: ep, queued: 1, steps: []step{handshake, accepted,
			{advance: time.Hour, req: signed(asanaSecret, event), status: 200, outcome: OutcomeReplayed},
		}},
		{name: "tampered body", ep: ep, queued: 1, steps: []step{handshake, accepted,
			{req: func(time.Time) *http.Request {
				return post(path, strings.Replace(event, "1201", "9999", 1), "X-Hook-Signature", hexMAC(asanaSecret, event))
			}, status: 401, outcome: OutcomeTampered},
		}},
		{name: "missing signature", ep: ep, steps: []step{handshake,
			{req: func(time.Time) *http.Request { return post(path, event) }, status: 401, outcome: OutcomeMissing},
		}},
	}
	runSchemeCases(t, cases)
}

func TestVerifyWorkfront(t *testing.T) {
	tokenOnly := Endpoint{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken}
	withSig := Endpoint{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken, Secret: workfrontSecret}
	custom := Endpoint{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken, AuthHeader: "X-Auth-Token"}
	const path = "/webhooks/workfront/acme"
	const event = `{"eventType":"UPDATE","subscriptionId":"sub-1","eventTime":{"nano":1,"epochSecond":1772366400},"newState":{"ID":"proj-1","name":"Launch"}}`
	req := func(auth, sig, body string) func(time.Time) *http.Request {
		return func(time.Time) *http.Request {
			return post(path, body, "Authorization", auth, "X-Workfront-Signature", sig)
		}
	}
	sig := hexMAC(workfrontSecret, event)
	cases := []schemeCase{
		{name: "valid bearer token", ep: tokenOnly, queued: 1, steps: []step{
			{req: req("Bearer "+workfrontToken, "", event), status: 200, outcome: OutcomeAccepted}}},
		{name: "valid bare token", ep: tokenOnly, queued: 1, steps: []step{
			{req: req(workfrontToken, "", event), status: 200, outcome: OutcomeAccepted}}},
		{name: "valid token in a configured header", ep: custom, queued: 1, steps: []step{
			{req: func(time.Time) *http.Request { return post(path, event, "X-Auth-Token", workfrontToken) },
				status: 200, outcome: OutcomeAccepted}}},
		{name: "forged token", ep: tokenOnly, steps: []step{
			{req: req("Bearer "+workfrontToken+"x", "", event), status: 401, outcome: OutcomeForged}}},
		{name: "token prefix", ep: tokenOnly, steps: []step{
			{req: req(workfrontToken[:10], "", event), status: 401, outcome: OutcomeForged}}},
		{name: "missing token", ep: tokenOnly, steps: []step{
			{req: req("", "", event), status: 401, outcome: OutcomeMissing}}},
		// Workfront signs no timestamp: there is no stale case.
		{name: "replayed", ep: tokenOnly, queued: 1, steps: []step{
			{req: req(workfrontToken, "", event), status: 200, outcome: OutcomeAccepted},
			{advance: time.Minute, req: req(workfrontToken, "", event), status: 200, outcome: OutcomeReplayed}}},
		{name: "signed valid", ep: withSig, queued: 1, steps: []step{
			{req: req(workfrontToken, sig, event), status: 200, outcome: OutcomeAccepted}}},
		{name: "signed valid with sha256= prefix", ep: withSig, queued: 1, steps: []step{
			{req: req(workfrontToken, "sha256="+sig, event), status: 200, outcome: OutcomeAccepted}}},
		{name: "signed forged signature", ep: withSig, steps: []step{
			{req: req(workfrontToken, hexMAC("nope", event), event), status: 401, outcome: OutcomeForged}}},
		{name: "signed, right signature, forged token", ep: withSig, steps: []step{
			{req: req("Bearer guess", sig, event), status: 401, outcome: OutcomeForged}}},
		{name: "signed missing signature", ep: withSig, steps: []step{
			{req: req(workfrontToken, "", event), status: 401, outcome: OutcomeMissing}}},
		{name: "signed replayed", ep: withSig, queued: 1, steps: []step{
			{req: req(workfrontToken, sig, event), status: 200, outcome: OutcomeAccepted},
			{req: req(workfrontToken, sig, event), status: 200, outcome: OutcomeReplayed}}},
		{name: "signed tampered body", ep: withSig, queued: 1, steps: []step{
			{req: req(workfrontToken, sig, event), status: 200, outcome: OutcomeAccepted},
			{req: req(workfrontToken, sig, strings.Replace(event, "Launch", "Scrap", 1)), status: 401, outcome: OutcomeTampered}}},
	}
	runSchemeCases(t, cases)
}

func TestVerifyHMAC(t *testing.T) {
	withTS := Endpoint{System: "github", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, TimestampHeader: "X-Timestamp", Window: 2 * time.Minute}
	bodyOnly := Endpoint{System: "github", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, Header: "X-Hub-Signature-256"}
	const path = "/webhooks/github/acme"
	const event = `{"action":"opened","number":7}`
	signedTS := func(secret, body string, skew time.Duration) func(time.Time) *http.Request {
		return func(now time.Time) *http.Request {
			ts := unix(now.Add(skew))
			return post(path, body, "X-Signature", "sha256="+hexMAC(secret, ts+"."+body), "X-Timestamp", ts)
		}
	}
	signedBody := func(secret, body string) func(time.Time) *http.Request {
		return func(time.Time) *http.Request {
			return post(path, body, "X-Hub-Signature-256", "sha256="+hexMAC(secret, body))
		}
	}
	accepted := step{req: signedTS(hmacSecret, event, 0), status: 200, outcome: OutcomeAccepted}
	cases := []schemeCase{
		{name: "valid", ep: withTS, queued: 1, steps: []step{accepted}},
		{name: "forged signature", ep: withTS, steps: []step{
			{req: signedTS("guess", event, 0), status: 401, outcome: OutcomeForged}}},
		{name: "signature without sha256= prefix", ep: withTS, steps: []step{
			{req: func(now time.Time) *http.Request {
				return post(path, event, "X-Signature", hexMAC(hmacSecret, unix(now)+"."+event), "X-Timestamp", unix(now))
			}, status: 401, outcome: OutcomeForged}}},
		{name: "stale timestamp (configured window)", ep: withTS, steps: []step{
			{req: signedTS(hmacSecret, event, -3*time.Minute), status: 401, outcome: OutcomeStale}}},
		{name: "replayed", ep: withTS, queued: 1, steps: []step{accepted,
			{req: signedTS(hmacSecret, event, 0), status: 200, outcome: OutcomeReplayed}}},
		{name: "same body, new timestamp is a new event", ep: withTS, queued: 2, steps: []step{accepted,
			{advance: time.Second, req: signedTS(hmacSecret, event, 0), status: 200, outcome: OutcomeAccepted}}},
		{name: "tampered body", ep: withTS, queued: 1, steps: []step{accepted,
			{req: func(now time.Time) *http.Request {
				r := signedTS(hmacSecret, event, 0)(now)
				r2 := post(path, `{"action":"closed","number":7}`)
				r2.Header = r.Header
				return r2
			}, status: 401, outcome: OutcomeTampered}}},
		{name: "missing signature", ep: withTS, steps: []step{
			{req: func(now time.Time) *http.Request { return post(path, event, "X-Timestamp", unix(now)) },
				status: 401, outcome: OutcomeMissing}}},
		{name: "missing timestamp", ep: withTS, steps: []step{
			{req: func(now time.Time) *http.Request {
				return post(path, event, "X-Signature", "sha256="+hexMAC(hmacSecret, "."+event))
			}, status: 401, outcome: OutcomeMissing}}},
		{name: "body only: valid", ep: bodyOnly, queued: 1, steps: []step{
			{req: signedBody(hmacSecret, event), status: 200, outcome: OutcomeAccepted}}},
		{name: "body only: forged", ep: bodyOnly, steps: []step{
			{req: signedBody("guess", event), status: 401, outcome: OutcomeForged}}},
		{name: "body only: replayed", ep: bodyOnly, queued: 1, steps: []step{
			{req: signedBody(hmacSecret, event), status: 200, outcome: OutcomeAccepted},
			{advance: time.Hour, req: signedBody(hmacSecret, event), status: 200, outcome: OutcomeReplayed}}},
		{name: "body only: tampered", ep: bodyOnly, queued: 1, steps: []step{
			{req: signedBody(hmacSecret, event), status: 200, outcome: OutcomeAccepted},
			{req: func(now time.Time) *http.Request {
				return post(path, event+"\n", "X-Hub-Signature-256", "sha256="+hexMAC(hmacSecret, event))
			}, status: 401, outcome: OutcomeTampered}}},
		{name: "body only: missing", ep: bodyOnly, steps: []step{
			{req: func(time.Time) *http.Request { return post(path, event) }, status: 401, outcome: OutcomeMissing}}},
	}
	runSchemeCases(t, cases)
}
