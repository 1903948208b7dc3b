package proxy

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// FromEnvironment returns a function that picks the proxy for a target
// "host:port" the way HTTPS_PROXY / https_proxy and NO_PROXY / no_proxy say,
// with the upper-case names taking precedence. It returns a nil URL and nil
// error when the target goes direct: no proxy is set, NO_PROXY matches the
// target (by host, domain suffix, host:port, IP or CIDR, or "*"), or the
// target is localhost or a loopback address.
//
// getenv is called only here, not by the returned function; main passes
// os.Getenv and tests pass a map lookup. A nil getenv means an empty
// environment. An HTTPS_PROXY that ParseURL rejects makes the returned
// function fail for every target, with the reason but not the value.
// HTTP_PROXY is not consulted: the tunnel is TLS, so HTTPS_PROXY applies.
func FromEnvironment(getenv func(string) string) func(target string) (*url.URL, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	name, raw := lookupEnv(getenv, "HTTPS_PROXY", "https_proxy")
	_, noProxy := lookupEnv(getenv, "NO_PROXY", "no_proxy")
	if raw == "" {
		return func(target string) (*url.URL, error) {
			return nil, checkTarget(target)
		}
	}
	proxyURL, err := ParseURL(raw)
	if err != nil {
		err = fmt.Errorf("proxy: environment variable %s: %w", name, err)
		return func(string) (*url.URL, error) { return nil, err }
	}
	// httpproxy decides only whether NO_PROXY exempts the target. It gets the
	// URL in canonical form, so it cannot parse the value differently from
	// ParseURL, and it never sees an invalid one (which it would ignore).
	useProxy := (&httpproxy.Config{HTTPSProxy: proxyURL.String(), NoProxy: noProxy}).ProxyFunc()
	return func(target string) (*url.URL, error) {
		if err := checkTarget(target); err != nil {
			return nil, err
		}
		via, err := useProxy(&url.URL{Scheme: "https", Host: target})
		if err != nil {
			// httpproxy fails only for HTTP_PROXY under CGI, with a fixed message.
			return nil, fmt.Errorf("proxy: choose proxy for %s: %w", target, err)
		}
		if via == nil {
			return nil, nil
		}
		u := *proxyURL // a copy, so callers cannot change each other's
		return &u, nil
	}
}

// lookupEnv returns the first of names that is set to something other than
// blanks, and its value.
func lookupEnv(getenv func(string) string, names ...string) (name, value string) {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return n, v
		}
	}
	return "", ""
}

// checkTarget reports whether target is host:port.
func checkTarget(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("proxy: choose proxy for %q: want host:port", target)
	}
	return nil
}
