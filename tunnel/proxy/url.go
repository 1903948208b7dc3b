package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ParseURL parses a proxy URL from configuration: http://[user:password@]host[:port]
// or https://..., where a bare "host:port" means http://host:port. A missing
// port means 80 for http and 443 for https. Reserved characters in the user
// name or password must be %-escaped: DOMAIN\user is written DOMAIN%5Cuser,
// and a password "p@ss/w" is written p%40ss%2Fw.
//
// Errors name the problem but never quote the input, which may hold a
// password.
func ParseURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("parse proxy URL: empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse errors quote the whole URL, and their inner errors quote
		// parts of it such as a "port" that is really a password: describe
		// the problem in our own words.
		return nil, fmt.Errorf("parse proxy URL: %s", urlProblem(err))
	}
	if err := checkURL(u); err != nil {
		return nil, fmt.Errorf("parse proxy URL: %w", err)
	}
	return u, nil
}

// urlProblem describes a url.Parse error without quoting any of the input.
func urlProblem(err error) string {
	var escErr url.EscapeError
	var hostErr url.InvalidHostError
	switch msg := err.Error(); {
	case errors.As(err, &escErr):
		return "invalid %-escape (a literal % must be written %25)"
	case errors.As(err, &hostErr):
		return "invalid character in host"
	case strings.Contains(msg, "invalid port"):
		return "invalid port (a password containing '/', '?' or '#' must be %-escaped)"
	case strings.Contains(msg, "invalid userinfo"):
		return "invalid character in user name or password (%-escape it)"
	case strings.Contains(msg, "missing protocol scheme"), strings.Contains(msg, "first path segment"):
		return "missing or malformed scheme (want http:// or https://)"
	default:
		return "malformed URL"
	}
}

// checkURL reports whether u can name a CONNECT proxy, without quoting u.
func checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		if !isToken(u.Scheme) || len(u.Scheme) > maxSchemeLen {
			return errors.New("unsupported scheme (want http or https)")
		}
		return fmt.Errorf("unsupported scheme %q (want http or https)", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return errors.New("missing host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return errors.New("empty port")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("port out of range 1-65535")
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errors.New("unexpected path, query or fragment (want scheme://host:port)")
	}
	return nil
}

// Redacted returns the proxy URL with the password replaced by "[redacted]",
// for logs. The user name stays; a nil URL gives "".
func Redacted(u *url.URL) string {
	if u == nil {
		return ""
	}
	noUser := *u
	noUser.User = nil
	s := noUser.String()
	if u.User == nil || u.Opaque != "" {
		return s // String prints no userinfo for an opaque URL
	}
	userinfo := url.User(u.User.Username()).String()
	if _, ok := u.User.Password(); ok {
		userinfo += ":[redacted]"
	}
	prefix := ""
	if u.Scheme != "" {
		prefix = u.Scheme + ":"
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(s, prefix), "//")
	return prefix + "//" + userinfo + "@" + rest
}
