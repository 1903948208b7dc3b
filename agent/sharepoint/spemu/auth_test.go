package spemu

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"

	"github.com/mcc-bridge/bridge/tunnel/proxy/ntlmserver"
)

const ntlmPassword = "NtLm-s3cret-Pw-4Kq"

// rawConn sends HTTP/1.1 requests over one TCP connection.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(method, path, authz string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	rc.t.Helper()
	req, _ := http.NewRequest(method, "http://"+rc.c.RemoteAddr().String()+path, bytes.NewReader(body))
	req.Header.Set("Accept", nometa)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if err := req.Write(rc.c); err != nil {
		rc.t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, req)
	if err != nil {
		rc.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func TestNTLMPerConnection(t *testing.T) {
	e := newEnv(t, Options{Auth: AuthNTLM, Users: map[string]string{`CONTOSO\alice`: ntlmPassword}})
	e.generate(Spec{Seed: 20, ItemsPerList: 2, PlainNames: true})
	neg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}
	handshake := func(rc *rawConn, password string) *http.Response {
		t.Helper()
		resp, _ := rc.send("GET", "/sites/site0/_api/web", "NTLM "+base64.StdEncoding.EncodeToString(neg), nil, nil)
		if resp.StatusCode != 401 {
			t.Fatalf("NEGOTIATE: HTTP %d, want 401", resp.StatusCode)
		}
		scheme, tok, _ := strings.Cut(resp.Header.Get("WWW-Authenticate"), " ")
		chal, err := base64.StdEncoding.DecodeString(tok)
		if scheme != "NTLM" || err != nil {
			t.Fatalf("challenge header %q", resp.Header.Get("WWW-Authenticate"))
		}
		auth, err := ntlmssp.NewAuthenticateMessage(chal, `CONTOSO\alice`, password, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ = rc.send("GET", "/sites/site0/_api/web", "NTLM "+base64.StdEncoding.EncodeToString(auth), nil, nil)
		return resp
	}

	a := dialRaw(t, e.url)
	resp, _ := a.send("GET", "/sites/site0/_api/web", "", nil, nil)
	if offered := resp.Header.Values("WWW-Authenticate"); resp.StatusCode != 401 || !slices.Contains(offered, "NTLM") || !slices.Contains(offered, "Negotiate") {
		t.Fatalf("anonymous: HTTP %d offering %v", resp.StatusCode, offered)
	}
	if resp := handshake(a, ntlmPassword); resp.StatusCode != 200 {
		t.Fatalf("AUTHENTICATE: HTTP %d", resp.StatusCode)
	}
	if resp, b := a.send("GET", "/sites/site0/_api/web", "", nil, nil); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"Title":"Site 0"`)) {
		t.Fatalf("same connection, no header: HTTP %d", resp.StatusCode)
	}
	if resp, b := a.send("GET", "/sites/site0/_api/web/currentuser", "", nil, nil); !bytes.Contains(b, []byte(`contoso\\alice`)) {
		t.Errorf("currentuser: HTTP %d %s", resp.StatusCode, b)
	}
	b := dialRaw(t, e.url)
	if resp, _ := b.send("GET", "/sites/site0/_api/web", "", nil, nil); resp.StatusCode != 401 {
		t.Fatalf("another connection: HTTP %d, want 401", resp.StatusCode)
	}
	if resp := handshake(b, "wrong"+ntlmPassword); resp.StatusCode != 401 {
		t.Fatalf("wrong password: HTTP %d, want 401", resp.StatusCode)
	}
	c := dialRaw(t, e.url)
	auth, _ := ntlmssp.NewAuthenticateMessage(ntlmserver.BuildChallenge(make([]byte, 8), "X", ntlmserver.AVPairs()), `CONTOSO\alice`, ntlmPassword, nil)
	if resp, _ := c.send("GET", "/sites/site0/_api/web", "NTLM "+base64.StdEncoding.EncodeToString(auth), nil, nil); resp.StatusCode != 401 {
		t.Fatalf("AUTHENTICATE without CHALLENGE: HTTP %d, want 401", resp.StatusCode)
	}
	st := e.s.Stats()
	if st.AuthHandshakes != 1 || st.AuthFailures != 2 {
		t.Errorf("stats: handshakes %d failures %d, want 1 and 2", st.AuthHandshakes, st.AuthFailures)
	}
}

func TestNTLMWithGoNTLMSSP(t *testing.T) {
	e := newEnv(t, Options{Auth: AuthNTLM, Users: map[string]string{`CONTOSO\alice`: ntlmPassword, "bob": "bob-pw"}})
	e.generate(Spec{Seed: 21, ItemsPerList: 5, PlainNames: true})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: tr}, Timeout: 10 * time.Second}
	do := func(user, pass, method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, e.url+path, rd)
		req.SetBasicAuth(user, pass)
		req.Header.Set("Accept", verbose)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	tests := []struct {
		name, user, pass string
		want             int
	}{
		{"DOMAIN\\user", `CONTOSO\alice`, ntlmPassword, 200},
		{"user without domain", "bob", "bob-pw", 200},
		{"wrong password", `CONTOSO\alice`, "nope", 401},
		{"unknown user", `CONTOSO\mallory`, ntlmPassword, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr.CloseIdleConnections() // an authenticated connection would let anyone through, as with IIS
			if resp, b := do(tt.user, tt.pass, "GET", "/sites/site0/_api/web", nil, nil); resp.StatusCode != tt.want {
				t.Errorf("HTTP %d, want %d: %s", resp.StatusCode, tt.want, truncate(string(b)))
			}
		})
	}
	t.Run("POST bodies are replayed through the handshake", func(t *testing.T) {
		tr.CloseIdleConnections() // start unauthenticated
		resp, b := do(`CONTOSO\alice`, ntlmPassword, "POST", "/sites/site0/_api/contextinfo", nil, nil)
		var ci struct {
			D struct {
				GetContextWebInformation struct{ FormDigestValue string }
			}
		}
		if err := json.Unmarshal(b, &ci); resp.StatusCode != 200 || err != nil {
			t.Fatalf("contextinfo: HTTP %d %v", resp.StatusCode, err)
		}
		tr.CloseIdleConnections()
		body := `{"query":{"__metadata":{"type":"SP.ChangeQuery"},"Item":true,"Add":true,"FetchLimit":"3"}}`
		resp, b = do(`CONTOSO\alice`, ntlmPassword, "POST", "/sites/site0/_api/site/getchanges", []byte(body),
			map[string]string{"Content-Type": verbose, "X-RequestDigest": ci.D.GetContextWebInformation.FormDigestValue})
		if resp.StatusCode != 200 || len(results(verbose, decode(t, b))) != 3 {
			t.Fatalf("getchanges over NTLM: HTTP %d %s", resp.StatusCode, truncate(string(b)))
		}
		before := e.s.Stats().AuthHandshakes
		if resp, _ := do(`CONTOSO\alice`, ntlmPassword, "GET", "/sites/site0/_api/web", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("keep-alive GET: HTTP %d", resp.StatusCode)
		}
		if after := e.s.Stats().AuthHandshakes; after != before {
			t.Errorf("a request on the authenticated connection ran a new handshake (%d -> %d)", before, after)
		}
	})
}

func TestBasicAuth(t *testing.T) {
	e := newEnv(t, Options{Auth: AuthBasic, Users: map[string]string{`CONTOSO\bob`: "pw"}})
	e.generate(Spec{Seed: 22, ItemsPerList: 1, PlainNames: true})
	tests := []struct {
		name, user, pass string
		set              bool
		want             int
	}{
		{"no credentials", "", "", false, 401},
		{"wrong password", `CONTOSO\bob`, "x", true, 401},
		{"domain\\user", `CONTOSO\bob`, "pw", true, 200},
		{"user alone matches a domain account", "bob", "pw", true, 200},
		{"other domain", `OTHER\bob`, "pw", true, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.url+"/sites/site0/_api/web", nil)
			if tt.set {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := e.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := e.s.Stats().AuthFailures; got != 3 {
		t.Errorf("AuthFailures: got %d, want 3", got)
	}
}

func TestFormDigest(t *testing.T) {
	now := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
	e := newEnv(t, Options{DigestTimeout: 10 * time.Minute, Now: func() time.Time { return now }})
	e.generate(Spec{Seed: 23, ItemsPerList: 1, PlainNames: true})
	code, m := e.postJSON("/sites/site0/_api/contextinfo", nometa, "", nil)
	if code != 200 || num(m["FormDigestTimeoutSeconds"]) != 600 || m["FormDigestValue"] == nil {
		t.Fatalf("contextinfo (nometadata): HTTP %d %v", code, m)
	}
	d := m["FormDigestValue"].(string)
	body := changeQueryBody(nometa, "", "5", []string{"Item", "Add"})
	steps := []struct {
		name    string
		advance time.Duration
		digest  string
		want    int
	}{
		{"valid digest", 0, d, 200},
		{"missing digest", 0, "", 403},
		{"forged digest", 0, "0xDEADBEEF,01 May 2025 08:00:00 -0000", 403},
		{"still valid after 9 minutes", 9 * time.Minute, d, 200},
		{"expired after 11 minutes", 2 * time.Minute, d, 403},
	}
	if _, err := e.s.AddSite("other", ""); err != nil {
		t.Fatal(err)
	}
	t.Run("a digest is valid for its site collection only", func(t *testing.T) {
		other := e.digest("/sites/other")
		if code, _ := e.postJSON("/sites/site0/_api/site/getchanges", nometa, other, body); code != 403 {
			t.Errorf("digest of /sites/other on /sites/site0: HTTP %d, want 403", code)
		}
	})
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.s.Advance(st.advance)
			code, m := e.postJSON("/sites/site0/_api/site/getchanges", nometa, st.digest, body)
			if code != st.want {
				t.Fatalf("HTTP %d, want %d: %v", code, st.want, m)
			}
			if code == 403 && errCode(m) != "-2130575251, Microsoft.SharePoint.SPException" {
				t.Errorf("error code %q", errCode(m))
			}
		})
	}
	t.Run("a fresh digest works again", func(t *testing.T) {
		if code, m := e.postJSON("/sites/site0/_api/site/getchanges", nometa, e.digest("/sites/site0"), body); code != 200 {
			t.Errorf("HTTP %d %v", code, m)
		}
	})
	if got := e.s.Stats().DigestFailures; got != 4 {
		t.Errorf("DigestFailures: got %d, want 4 (other site, missing, forged, expired)", got)
	}
	t.Run("default timeout is 1800 s", func(t *testing.T) {
		e2 := newEnv(t, Options{})
		e2.generate(Spec{Seed: 1, ItemsPerList: 1})
		_, m := e2.postJSON("/sites/site0/_api/contextinfo", verbose, "", nil)
		if got := num(dig(m, "d", "GetContextWebInformation", "FormDigestTimeoutSeconds")); got != 1800 {
			t.Errorf("FormDigestTimeoutSeconds: got %d", got)
		}
	})
}
