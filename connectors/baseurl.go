package connectors

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// ParseBaseURL checks a system's base URL: absolute, https (http only to
// a loopback host, for tests and local fakes), with no user, query or
// fragment. A trailing slash is dropped.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("want scheme://host with no user, query or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !Loopback(u.Hostname()) {
			return nil, errors.New("want https (http only to a loopback host)")
		}
	default:
		return nil, errors.New("want https")
	}
	return u, nil
}

// Loopback reports whether host is localhost or a loopback IP address.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
