package credentials

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// tokenClient returns c with a transport that reads Slack's token endpoint
// dialect as RFC 6749: oauth.v2.access answers every failure with HTTP 200
// and {"ok":false,"error":"..."}, which golang.org/x/oauth2 would take for
// a malformed success. The rewrite makes a dead refresh token an
// invalid_grant (so the connection is re-read, then EXPIRED and alerted)
// and "ratelimited" a 429 (retried). Other providers' answers pass as they
// are.
func tokenClient(c *http.Client) *http.Client {
	cc := *c
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = okFalseTransport{base}
	return &cc
}

type okFalseTransport struct{ base http.RoundTripper }

// slackTokenErrors maps Slack's token-endpoint errors to RFC 6749 codes.
var slackTokenErrors = map[string]string{
	"invalid_refresh_token": "invalid_grant",
	"invalid_grant_type":    "unsupported_grant_type",
	"invalid_code":          "invalid_grant",
	"code_already_used":     "invalid_grant",
	"token_revoked":         "invalid_grant",
	"token_expired":         "invalid_grant",
	"invalid_client_id":     "invalid_client",
	"bad_client_secret":     "invalid_client",
	"bad_redirect_uri":      "invalid_grant",
	"invalid_scope":         "invalid_scope",
	"internal_error":        "server_error",
	"service_unavailable":   "temporarily_unavailable",
	"fatal_error":           "server_error",
	"request_timeout":       "temporarily_unavailable",
}

func (t okFalseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var answer struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &answer) != nil || answer.OK == nil || *answer.OK {
		return resp, nil
	}
	code, status := slackTokenErrors[answer.Error], http.StatusBadRequest
	switch {
	case answer.Error == "ratelimited":
		code, status = "", http.StatusTooManyRequests
	case code == "":
		code = answer.Error
		if code == "" {
			code = "invalid_request"
		}
	}
	out, _ := json.Marshal(map[string]string{"error": code, "error_description": "provider said ok:false, error " + answer.Error})
	resp.StatusCode, resp.Status = status, strconv.Itoa(status)+" "+http.StatusText(status)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header = resp.Header.Clone()
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return resp, nil
}
