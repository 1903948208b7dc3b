package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const subscriberSecret = "subscriber-hmac-key-42"

func TestHTTPSubscriber(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type received struct {
		header http.Header
		body   []byte
	}
	tests := []struct {
		name      string
		body      string
		status    int
		wantErr   bool
		permanent bool
		check     func(t *testing.T, env map[string]any)
	}{
		{name: "json body", body: `{"type":"event_callback","event_id":"Ev9"}`, status: 200,
			check: func(t *testing.T, env map[string]any) {
				b, ok := env["body"].(map[string]any)
				if !ok || b["event_id"] != "Ev9" {
					t.Errorf("got body %v, want the webhook's JSON embedded", env["body"])
				}
				if _, ok := env["bodyBase64"]; ok {
					t.Error("got bodyBase64 for a JSON body")
				}
			}},
		{name: "form body", body: "command=%2Fbridge&text=hi", status: 204,
			check: func(t *testing.T, env map[string]any) {
				if env["bodyBase64"] != "Y29tbWFuZD0lMkZicmlkZ2UmdGV4dD1oaQ==" {
					t.Errorf("got bodyBase64 %v, want the form body in base64", env["bodyBase64"])
				}
			}},
		{name: "server error retried", body: `{}`, status: 502, wantErr: true},
		{name: "rate limited retried", body: `{}`, status: 429, wantErr: true},
		{name: "request timeout retried", body: `{}`, status: 408, wantErr: true},
		{name: "client error permanent", body: `{}`, status: 400, wantErr: true, permanent: true},
		{name: "gone permanent", body: `{}`, status: 410, wantErr: true, permanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan received, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- received{r.Header.Clone(), b}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			s, err := NewHTTPSubscriber(HTTPSubscriberConfig{URL: srv.URL + "/hook?token=query-secret", Secret: subscriberSecret,
				Client: srv.Client(), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			ev := Event{ID: 17, System: "slack", Tenant: "acme", ReceivedAt: now, ContentType: "application/json", Body: []byte(tc.body), Attempt: 2}
			err = s.Deliver(context.Background(), ev)
			if (err != nil) != tc.wantErr || errors.Is(err, ErrPermanent) != tc.permanent {
				t.Fatalf("got %v, want error %t, permanent %t", err, tc.wantErr, tc.permanent)
			}
			if err != nil {
				noSecrets(t, "error", err.Error())
				if strings.Contains(err.Error(), "query-secret") || strings.Contains(err.Error(), subscriberSecret) {
					t.Errorf("error names the query or the secret: %v", err)
				}
			}
			r := <-got
			ts := "1772366400"
			if want := "t=" + ts + ",v1=" + hexMAC(subscriberSecret, ts+"."+string(r.body)); r.header.Get(DefaultSignatureHeader) != want {
				t.Errorf("got signature %q, want %q", r.header.Get(DefaultSignatureHeader), want)
			}
			if r.header.Get(EventIDHeader) != "17" || r.header.Get(AttemptHeader) != "2" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("got headers %v, want event id 17, attempt 2, JSON", r.header)
			}
			var env map[string]any
			if err := json.Unmarshal(r.body, &env); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if env["id"] != 17.0 || env["system"] != "slack" || env["tenant"] != "acme" || env["attempt"] != 2.0 {
				t.Errorf("got envelope %v, want id 17, slack/acme, attempt 2", env)
			}
			if tc.check != nil {
				tc.check(t, env)
			}
		})
	}
}

func TestHTTPSubscriberUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s, err := NewHTTPSubscriber(HTTPSubscriberConfig{URL: "http://user:pw-secret@" + addr + "/hook?token=query-secret", Secret: subscriberSecret})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Deliver(context.Background(), Event{ID: 1, Body: []byte(`{}`)})
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("got %v, want a retryable error", err)
	}
	for _, leak := range []string{"query-secret", "pw-secret", subscriberSecret} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q holds %q", err, leak)
		}
	}
}

func TestNewHTTPSubscriberValidation(t *testing.T) {
	for _, cfg := range []HTTPSubscriberConfig{
		{URL: "", Secret: subscriberSecret},
		{URL: "ftp://example.com/x", Secret: subscriberSecret},
		{URL: "/relative", Secret: subscriberSecret},
		{URL: "https://example.com/hook"},
	} {
		if _, err := NewHTTPSubscriber(cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewHTTPSubscriber(%+v): got %v, want ErrInvalid", cfg, err)
		}
	}
}
