package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
)

// sharePoint runs the sharepoint step of one site: the site answers
// GET _api/site, authenticated as the agent's crawler authenticates.
func (r *runner) sharePoint(ctx context.Context, site string) {
	r.step(ctx, "sharepoint "+redactURL(site), func(ctx context.Context) Result {
		return r.checkSite(ctx, site)
	})
}

func (r *runner) checkSite(ctx context.Context, site string) Result {
	a := r.cfg.SharePoint.Auth
	method := a.Method
	if method == "" {
		method = "ntlm"
	}
	pw, err := a.Password(r.opts.Getenv)
	if err != nil {
		return Result{Status: Fail, Detail: err.Error(),
			Hint: "the agent reads the SharePoint password from sharepoint.auth.password_file or the variable named by password_env: make it readable by the account the agent runs as"}
	}
	r.addSecret(string(pw))
	auth := sharepoint.Auth{Method: method, Username: a.Username, Password: pw}
	if method == "kerberos" {
		auth.Kerberos = sharepoint.Kerberos{Realm: a.Realm, Krb5Conf: a.Krb5Conf, SPN: a.SPN, Keytab: a.Keytab}
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = r.opts.Timeout
	base.TLSHandshakeTimeout = r.opts.Timeout
	defer base.CloseIdleConnections()
	rec := &recorder{rt: base}
	c, err := sharepoint.New(sharepoint.Config{
		SiteURL:   site,
		Auth:      auth,
		Version:   "doctor",
		Transport: rec,
		OData:     r.cfg.SharePoint.OData,
		Timeout:   r.opts.Timeout,
		// One quick retry, not the crawler's patient ones.
		MaxRetries:  1,
		BackoffBase: 20 * time.Millisecond,
		BackoffMax:  100 * time.Millisecond,
		Connections: 1,
	})
	if err != nil {
		return Result{Status: Fail, Detail: err.Error(), Hint: "fix the sharepoint section of agent.yaml"}
	}
	defer c.Close()
	s, err := c.Site(ctx)
	if err != nil {
		return r.siteFailure(err, site, method, rec)
	}
	detail := fmt.Sprintf("site %s (id %s)", redactURL(s.URL), s.ID)
	if method != "none" {
		detail = fmt.Sprintf("authenticated as %s with %s; %s", a.Username, method, detail)
	}
	if v := rec.version(); v != "" {
		detail += "; " + serverVersion(v)
	}
	return Result{Status: Pass, Detail: detail}
}

// siteFailure explains why a site did not answer.
func (r *runner) siteFailure(err error, site, method string, rec *recorder) Result {
	host := site
	if u, perr := url.Parse(site); perr == nil {
		host = u.Host
	}
	account := r.cfg.SharePoint.Auth.Username
	var ae *sharepoint.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusUnauthorized:
			offered := "nothing"
			if o := rec.offered(); len(o) > 0 {
				offered = strings.Join(o, ", ")
			}
			detail := fmt.Sprintf("HTTP 401: SharePoint refused the account %s with %s (the server offers %s)", account, method, offered)
			var hint string
			switch method {
			case "none":
				hint = "SharePoint wants authentication: set sharepoint.auth (method ntlm, username DOMAIN\\user and password_file or password_env)"
			case "kerberos":
				hint = "SharePoint refused the Kerberos ticket: check that the SPN (sharepoint.auth.spn, default HTTP/<site host>) is registered on the web application's account (setspn -L) and that the server offers Negotiate"
			default:
				hint = "check sharepoint.auth.username (DOMAIN\\user) and the password in " + passwordSource(r.cfg.SharePoint.Auth) +
					", and that the account is neither locked nor expired"
				switch {
				case method == "ntlm" && !containsFold(rec.offered(), "ntlm") && containsFold(rec.offered(), "negotiate"):
					hint += "; the server may accept Kerberos only: try method kerberos"
				case method == "basic" && !containsFold(rec.offered(), "basic"):
					hint += "; the server does not offer Basic: use method ntlm"
				}
			}
			return Result{Status: Fail, Detail: detail, Hint: hint}
		case ae.Status == http.StatusForbidden:
			return Result{Status: Fail, Detail: fmt.Sprintf("HTTP 403: %s authenticated but may not read the site: %s", account, ae.Message),
				Hint: "grant the account read access to the site collection (a Full Read web application user policy in Central Administration covers every site)"}
		case sharepoint.IsNotFound(err):
			return Result{Status: Fail, Detail: "HTTP 404: no site collection at " + redactURL(site),
				Hint: "check the URL in sharepoint.sites: it must name a site collection, e.g. https://sp.corp.example.com/sites/marketing"}
		}
		return Result{Status: Fail, Detail: ae.Error(), Hint: "SharePoint answered with an error: check its health and ULS logs (the SPRequestGuid of the failed request identifies it)"}
	}
	var de *net.DNSError
	var uae x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	var he x509.HostnameError
	var rhe tls.RecordHeaderError
	switch {
	case errors.Is(err, sharepoint.ErrKerberosCredentials), errors.Is(err, sharepoint.ErrKerberosUnknownPrincipal):
		return Result{Status: Fail, Detail: err.Error(), Hint: "check sharepoint.auth.username, realm and the password or keytab"}
	case errors.Is(err, sharepoint.ErrKerberosUnknownService):
		return Result{Status: Fail, Detail: err.Error(), Hint: "register the SPN (setspn -S HTTP/<site host> <web application account>) or set sharepoint.auth.spn"}
	case errors.Is(err, sharepoint.ErrKDCUnreachable):
		return Result{Status: Fail, Detail: err.Error(), Hint: "check the KDCs in krb5.conf (sharepoint.auth.krb5_conf) and that TCP/UDP port 88 to them is open"}
	case errors.As(err, &de):
		return Result{Status: Fail, Detail: "the SharePoint host name does not resolve: " + describeDNSError(err),
			Hint: "check the URL in sharepoint.sites and this machine's DNS (nslookup " + hostOnly(host) + ")"}
	case errors.As(err, &he):
		return Result{Status: Fail, Detail: "SharePoint's TLS certificate does not name " + hostOnly(host) + ": " + err.Error(),
			Hint: "use the host name the certificate names (the public URL of the web application's zone) in sharepoint.sites"}
	case errors.As(err, &uae), errors.As(err, &cve), strings.Contains(err.Error(), "x509:"):
		return Result{Status: Fail, Detail: "SharePoint's TLS certificate is not trusted by this machine: " + err.Error(),
			Hint: "install the CA that issued SharePoint's certificate (usually the company's root CA) in this machine's trust store: the agent uses the system roots"}
	case errors.As(err, &rhe), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return Result{Status: Fail, Detail: "no TLS at " + host + ": " + err.Error(), Hint: "the site is http, not https, or the port is wrong: fix the URL in sharepoint.sites"}
	case isConnRefused(err):
		return Result{Status: Fail, Detail: "connection refused by " + host + ": " + err.Error(),
			Hint: "check the URL's host and port in sharepoint.sites, and that IIS is running on the SharePoint server"}
	case isTimeout(err):
		return Result{Status: Fail, Detail: fmt.Sprintf("no answer from %s within %s: %v", host, r.opts.Timeout, err),
			Hint: "a firewall may drop the connection from this machine to SharePoint, or SharePoint is overloaded"}
	}
	return Result{Status: Fail, Detail: err.Error(), Hint: "check the URL in sharepoint.sites and the network path from this machine to SharePoint"}
}

// passwordSource names where the password comes from.
func passwordSource(a agent.SharePointAuth) string {
	if a.PasswordFile != "" {
		return "password_file " + a.PasswordFile
	}
	return "the environment variable " + a.PasswordEnv + " (password_env)"
}

// serverVersion reads MicrosoftSharePointTeamServices.
func serverVersion(v string) string {
	parts := strings.Split(v, ".")
	name := ""
	if len(parts) == 4 {
		build, _ := strconv.Atoi(parts[3])
		switch {
		case parts[0] == "15":
			name = "SharePoint 2013"
		case parts[0] == "16" && build < 10000:
			name = "SharePoint Server 2016"
		case parts[0] == "16" && build < 14000:
			name = "SharePoint Server 2019"
		case parts[0] == "16":
			name = "SharePoint Server Subscription Edition"
		}
	}
	if name == "" {
		return "server version " + v
	}
	return name + " (" + v + ")"
}

// redactURL drops userinfo and query from a URL for display.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// recorder notes what the responses say about the server: its version,
// and the authentication schemes of its 401 answers.
type recorder struct {
	rt http.RoundTripper

	mu      sync.Mutex
	ver     string   // guarded by mu
	schemes []string // guarded by mu
}

// RoundTrip implements http.RoundTripper.
func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rc.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if v := resp.Header.Get("MicrosoftSharePointTeamServices"); v != "" {
		rc.ver = v
	}
	if resp.StatusCode == http.StatusUnauthorized {
		for _, h := range resp.Header.Values("WWW-Authenticate") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
			if scheme != "" && !containsFold(rc.schemes, scheme) && len(rc.schemes) < 8 {
				rc.schemes = append(rc.schemes, scheme)
			}
		}
	}
	return resp, nil
}

// CloseIdleConnections passes on to the transport.
func (rc *recorder) CloseIdleConnections() {
	if c, ok := rc.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (rc *recorder) version() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.ver
}

func (rc *recorder) offered() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.schemes...)
}
