package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// errHeaderTooLarge is returned when the proxy's response head is longer than
// maxHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("proxy response header exceeds %d bytes", maxHeaderBytes)

// errBodyTooLarge is returned when the body of a 407 answer that must be
// drained (NTLM) is longer than maxDrainBytes.
var errBodyTooLarge = fmt.Errorf("proxy response body exceeds %d bytes", maxDrainBytes)

// errClosedEarly is wrapped when the proxy closes the connection before
// completing its response.
var errClosedEarly = errors.New("proxy closed the connection")

// AuthError reports that the proxy answered CONNECT with 407 Proxy
// Authentication Required: either no credentials were configured or the proxy
// rejected the ones sent. Callers branch on it with errors.As, for example to
// ask the operator for new proxy credentials instead of retrying.
//
// A 401 answer to CONNECT is an AuthError too: no origin server is reached
// before the tunnel is up, so it can only come from the proxy, and some
// proxies send it for wrong credentials (tinyproxy 1.11 and older, its issue
// #532).
//
// It never holds the user name or the password.
type AuthError struct {
	// Proxy is the proxy's host:port.
	Proxy string
	// StatusCode is 407, or 401 from proxies that misuse it.
	StatusCode int
	// Scheme is the scheme the Dialer authenticated with, "Basic" or "NTLM";
	// empty when it sent no credentials.
	Scheme string
	// Offered lists the schemes named by the proxy's Proxy-Authenticate
	// headers (WWW-Authenticate on a 401), in the proxy's order, e.g.
	// ["Negotiate", "NTLM", "Basic"].
	Offered []string
}

// Error says whether authentication was required or failed, at which proxy,
// with which scheme, and which schemes the proxy offers.
func (e *AuthError) Error() string {
	offered := "the proxy offered no scheme"
	if len(e.Offered) > 0 {
		offered = "the proxy offers " + strings.Join(e.Offered, ", ")
	}
	if e.Scheme == "" {
		return fmt.Sprintf("proxy authentication required by %s: no credentials configured (%s)", e.Proxy, offered)
	}
	return fmt.Sprintf("proxy authentication failed at %s with scheme %s (%s)", e.Proxy, e.Scheme, offered)
}

// StatusError reports that the proxy answered CONNECT with a status other
// than 200, 401 and 407, e.g. 403 when its policy forbids the target or 502 when
// it cannot reach it.
type StatusError struct {
	// Proxy is the proxy's host:port.
	Proxy string
	// StatusCode is the HTTP status code, e.g. 403.
	StatusCode int
	// Status is the status code and reason phrase, e.g. "403 Forbidden",
	// cut to printable ASCII and at most maxStatusLen bytes since the proxy
	// chose it.
	Status string
}

// Error names the proxy and its status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("proxy %s answered CONNECT with %s", e.Proxy, e.Status)
}

// Bounds on what the proxy controls in our error messages.
const (
	maxStatusLen  = 80
	maxSchemes    = 8
	maxSchemeLen  = 32
	maxDrainBytes = 1 << 20
)

// responseError turns a non-200 CONNECT answer into an *AuthError or a
// *StatusError. scheme is the authentication scheme that was tried, or "".
func responseError(resp *http.Response, proxyAddr, scheme string) error {
	switch resp.StatusCode {
	case http.StatusProxyAuthRequired:
		return &AuthError{Proxy: proxyAddr, StatusCode: resp.StatusCode, Scheme: scheme,
			Offered: authSchemes(resp.Header.Values("Proxy-Authenticate"))}
	case http.StatusUnauthorized:
		challenges := resp.Header.Values("Proxy-Authenticate")
		if len(challenges) == 0 {
			challenges = resp.Header.Values("WWW-Authenticate")
		}
		return &AuthError{Proxy: proxyAddr, StatusCode: resp.StatusCode, Scheme: scheme, Offered: authSchemes(challenges)}
	}
	return &StatusError{Proxy: proxyAddr, StatusCode: resp.StatusCode, Status: printable(resp.Status, maxStatusLen)}
}

// printable returns s with every byte outside printable ASCII removed, cut to
// at most n bytes.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// authSchemes returns the authentication schemes named by the values of
// Proxy-Authenticate (or WWW-Authenticate) headers, deduplicated, at most
// maxSchemes of at most maxSchemeLen bytes each. One value may hold several
// challenges separated by commas, each "scheme [token68 | param=value, ...]"
// (RFC 9110 section 11.6.1).
func authSchemes(challenges []string) []string {
	var schemes []string
	for _, v := range challenges {
		for _, elem := range splitOutsideQuotes(v, ',') {
			elem = strings.TrimSpace(elem)
			end := strings.IndexAny(elem, " \t=")
			name := elem
			if end >= 0 {
				if elem[end] == '=' {
					continue // an auth-param of the previous challenge
				}
				name = elem[:end]
				// "realm =x" is a param too: look past spaces for '='.
				if rest := strings.TrimLeft(elem[end:], " \t"); strings.HasPrefix(rest, "=") {
					continue
				}
			}
			if name == "" || len(name) > maxSchemeLen || !isToken(name) || containsFold(schemes, name) {
				continue
			}
			schemes = append(schemes, name)
			if len(schemes) == maxSchemes {
				return schemes
			}
		}
	}
	return schemes
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted string.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	inQuote, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
