package sharepoint_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// ntlmLeg is one HTTP exchange of an NTLM handshake, as sent below
// go-ntlmssp's Negotiator.
type ntlmLeg struct {
	endpoint string // last path segment: contextinfo, getchanges
	msg      int    // NTLM message type in Authorization (1, 3), 0 for none
	body     string // the request body sent on this leg
	status   int
}

func (l ntlmLeg) String() string {
	return fmt.Sprintf("%s type %d (%d bytes) -> %d", l.endpoint, l.msg, len(l.body), l.status)
}

// ntlmRecorder records every leg, and closes the idle connections before
// the first leg of the first POST to getchanges, so that it runs on a
// fresh, unauthenticated connection and needs a handshake of its own.
type ntlmRecorder struct {
	inner *http.Transport

	mu     sync.Mutex
	legs   []ntlmLeg
	closed bool // the idle connections were closed once
}

// RoundTrip records req and its response status.
func (nr *ntlmRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.URL.Path
	leg := ntlmLeg{endpoint: p[strings.LastIndexByte(p, '/')+1:]}
	if scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && (scheme == "NTLM" || scheme == "Negotiate") {
		if m, err := base64.StdEncoding.DecodeString(tok); err == nil && len(m) > 8 {
			leg.msg = int(m[8])
		}
	}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close() // lets the Negotiator rewind its body for the next leg
		if err != nil {
			return nil, err
		}
		leg.body = string(b)
		req = req.Clone(req.Context()) // a RoundTripper must not change its caller's request
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	nr.mu.Lock()
	if leg.endpoint == "getchanges" && leg.msg == 0 && !nr.closed {
		nr.closed = true
		nr.inner.CloseIdleConnections()
	}
	nr.mu.Unlock()
	resp, err := nr.inner.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	leg.status = resp.StatusCode
	nr.mu.Lock()
	nr.legs = append(nr.legs, leg)
	nr.mu.Unlock()
	return resp, nil
}

// TestNTLMBodyReplay reads the change log through the client with NTLM:
// the contextinfo POST and the first getchanges POST each start on a
// fresh connection, so go-ntlmssp must resend their bodies on every leg of
// the 401 handshake; the next POST rides the authenticated connection.
func TestNTLMBodyReplay(t *testing.T) {
	const user, password = `CONTOSO\svc-crawl`, "Ntlm-replay-Pw-7"
	emu, base := startEmu(t, spemu.Options{Auth: spemu.AuthNTLM, Users: map[string]string{user: password}},
		spemu.Spec{Seed: 51, SiteNames: []string{"mkt"}, ItemsPerList: 20, PlainNames: true})
	for _, mode := range []string{sharepoint.ODataVerbose, sharepoint.ODataNoMetadata} {
		t.Run(mode, func(t *testing.T) {
			emu.ResetStats()
			rec := &ntlmRecorder{inner: http.DefaultTransport.(*http.Transport).Clone()}
			t.Cleanup(rec.inner.CloseIdleConnections)
			// One connection slot: the client's requests share rec's pool one at a time.
			c := newEmuClient(t, sharepoint.Config{SiteURL: base + "/sites/mkt", OData: mode, Connections: 1, Transport: rec,
				Auth: sharepoint.Auth{Method: "ntlm", Username: user, Password: password}})
			var got []sharepoint.Change
			if err := c.Changes(context.Background(), "", func(page []sharepoint.Change) error {
				got = append(got, page...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			log, err := emu.Changes("/sites/mkt")
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, ch := range log {
				if ch.Object == "item" || ch.Object == "list" || ch.Object == "web" {
					want++
				}
			}
			if len(got) != want || want == 0 {
				t.Errorf("got %d changes, want the log's %d", len(got), want)
			}
			rec.mu.Lock()
			legs := rec.legs
			rec.mu.Unlock()
			if len(legs) != 7 {
				t.Fatalf("got %d legs, want 7 (two handshakes of 3, then one request): %v", len(legs), legs)
			}
			for i, w := range []struct {
				endpoint string
				msg      int
				status   int
			}{
				{"contextinfo", 0, 401}, {"contextinfo", 1, 401}, {"contextinfo", 3, 200},
				{"getchanges", 0, 401}, {"getchanges", 1, 401}, {"getchanges", 3, 200},
				{"getchanges", 0, 200}, // the empty page, on the authenticated connection
			} {
				if l := legs[i]; l.endpoint != w.endpoint || l.msg != w.msg || l.status != w.status {
					t.Errorf("leg %d: got %v, want %s type %d -> %d", i, l, w.endpoint, w.msg, w.status)
				}
			}
			query := legs[3].body
			if !strings.Contains(query, `"query"`) || !strings.Contains(query, `"FetchLimit":"1000"`) {
				t.Errorf("getchanges body %q is no ChangeQuery", query)
			}
			for i := 3; i < 6; i++ {
				if legs[i].body != query {
					t.Errorf("leg %d resent %d bytes of the body, want all %d", i, len(legs[i].body), len(query))
				}
			}
			st := emu.Stats()
			if st.AuthHandshakes != 2 || st.AuthFailures != 0 || st.DigestFailures != 0 {
				t.Errorf("emulator saw %d handshakes, %d auth and %d digest failures, want 2, 0 and 0", st.AuthHandshakes, st.AuthFailures, st.DigestFailures)
			}
			if n := st.Requests[spemu.EndpointChanges]; n != 2 {
				t.Errorf("emulator served %d getchanges, want 2", n)
			}
		})
	}
}
