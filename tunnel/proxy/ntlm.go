package proxy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/go-ntlmssp"
)

// ntlm runs the NTLM handshake on x's connection: CONNECT with a NEGOTIATE
// message, a 407 answer with the CHALLENGE, then CONNECT with the
// AUTHENTICATE message. NTLM authenticates the connection, so all of it must
// happen on one connection, and the 407 body must be drained in between.
//
// It returns the last response; the caller turns a non-200 one into an
// error. user may be DOMAIN\user.
func (x *exchange) ntlm(user, password string) (*http.Response, error) {
	negotiate, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		return nil, fmt.Errorf("ntlm: build negotiate message: %w", err)
	}
	resp, err := x.roundTrip("NTLM " + base64.StdEncoding.EncodeToString(negotiate))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusProxyAuthRequired {
		return resp, nil // 200: the proxy needs no authentication after all
	}
	challenge, ok := ntlmChallenge(resp.Header)
	if !ok {
		return resp, nil // the proxy does not do NTLM: an AuthError lists what it does
	}
	if resp.Close || strings.EqualFold(resp.Header.Get("Proxy-Connection"), "close") {
		return nil, fmt.Errorf("ntlm: proxy %s closed the connection after its challenge, but NTLM needs one persistent connection", x.proxy)
	}
	if err := drain(resp.Body); err != nil {
		return nil, fmt.Errorf("ntlm: read 407 body from proxy %s: %w", x.proxy, err)
	}
	authenticate, err := ntlmssp.NewAuthenticateMessage(challenge, user, password, nil)
	if err != nil {
		return nil, fmt.Errorf("ntlm: answer challenge from proxy %s: %w", x.proxy, err)
	}
	return x.roundTrip("NTLM " + base64.StdEncoding.EncodeToString(authenticate))
}

// ntlmChallenge returns the decoded CHALLENGE message of a
// "Proxy-Authenticate: NTLM <base64>" header.
func ntlmChallenge(h http.Header) ([]byte, bool) {
	for _, v := range h.Values("Proxy-Authenticate") {
		scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !strings.EqualFold(scheme, "NTLM") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
		if err == nil && len(b) > 0 {
			return b, true
		}
	}
	return nil, false
}
