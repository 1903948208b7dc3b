package sharepoint

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// DefaultKrb5Conf is the krb5.conf read when Kerberos.Krb5Conf is empty.
const DefaultKrb5Conf = "/etc/krb5.conf"

// Kerberos failures that callers tell apart with errors.Is. Their messages
// name the principal, never the password.
var (
	// ErrKerberosCredentials: the KDC refused the password or keytab
	// (KDC_ERR_PREAUTH_FAILED, or a reply the key cannot decrypt). The
	// client does not try that password again, so that a crawl does not
	// lock the account out; a corrected one needs a restart.
	ErrKerberosCredentials = errors.New("the KDC refused the password or keytab")
	// ErrKerberosUnknownPrincipal: the KDC does not know the account
	// (KDC_ERR_C_PRINCIPAL_UNKNOWN).
	ErrKerberosUnknownPrincipal = errors.New("the KDC does not know the account")
	// ErrKerberosUnknownService: the KDC knows no account holding the SPN
	// (KDC_ERR_S_PRINCIPAL_UNKNOWN): register it (setspn -S HTTP/host
	// account) or name the registered one in Kerberos.SPN.
	ErrKerberosUnknownService = errors.New("the KDC knows no account with this service principal name")
	// ErrKDCUnreachable: no KDC of the realm answered, over UDP or TCP.
	// Requests retry it with backoff, as they retry network errors.
	ErrKDCUnreachable = errors.New("no KDC of the realm answered")
)

// Kerberos configures Auth.Method "kerberos": every request carries a
// SPNEGO (RFC 4559) "Authorization: Negotiate" token wrapping a Kerberos
// AP-REQ for the site's service principal, made by
// github.com/jcmturner/gokrb5 (pure Go: no system Kerberos library, and
// the agent still cross-builds for Windows without cgo).
//
// The client logs in (AS exchange) before its first request, caches the
// TGT and service ticket, and logs in again when the TGT nears its end
// (gokrb5 renews or replaces it). When SharePoint refuses a ticket, the
// request is retried once after a fresh login, for a service key that
// changed since the ticket was issued.
type Kerberos struct {
	// Realm is the account's realm, the AD domain in capitals
	// (CORP.EXAMPLE.COM). Empty means the realm of Auth.Username written
	// user@REALM; one of the two is required, and they must agree.
	Realm string
	// Krb5Conf is the path of the krb5.conf naming the realm's KDCs
	// ([realms] REALM = { kdc = host }) or turning on dns_lookup_kdc.
	// Empty means DefaultKrb5Conf (/etc/krb5.conf).
	Krb5Conf string
	// SPN is the service principal name of the SharePoint web
	// application. Empty means HTTP/<host of Config.SiteURL> (no port), as
	// browsers ask for it.
	SPN string
	// Keytab is the path of a keytab holding the account's keys, used
	// instead of Auth.Password. Empty means the password.
	Keytab string
}

// kerberos makes the Negotiate tokens of one Client.
type kerberos struct {
	principal string // user@REALM, for messages
	spn       string
	password  Secret // to scrub from gokrb5's messages, in case
	newClient func() *client.Client

	mu      sync.Mutex     // serializes gokrb5 use: its login is not safe for concurrent calls
	cl      *client.Client // guarded by mu; nil before the first login and after reset
	gen     int            // guarded by mu: counts clients, so that one refused ticket resets once
	refused error          // guarded by mu: a credential rejection, returned without asking the KDC again
	closed  bool           // guarded by mu
}

// newKerberos checks auth for Method "kerberos" and prepares the login
// without contacting the KDC.
func newKerberos(auth Auth, site *url.URL, log *slog.Logger) (*kerberos, error) {
	kc := auth.Kerberos
	user, realm := auth.Username, kc.Realm
	if strings.Contains(user, `\`) {
		return nil, fmt.Errorf(`sharepoint kerberos: username %q: write user or user@REALM, not DOMAIN\user`, user)
	}
	if u, r, ok := strings.Cut(user, "@"); ok {
		if realm != "" && realm != r {
			return nil, fmt.Errorf("sharepoint kerberos: username %q names realm %s but the realm is %s", user, r, realm)
		}
		user, realm = u, r
	}
	switch {
	case user == "":
		return nil, errors.New("sharepoint kerberos: the username is empty")
	case realm == "":
		return nil, fmt.Errorf("sharepoint kerberos: no realm for %s: set the realm or write the username as user@REALM", user)
	case kc.Keytab == "" && auth.Password == "":
		return nil, fmt.Errorf("sharepoint kerberos: %s@%s has neither a password nor a keytab", user, realm)
	case kc.Keytab != "" && auth.Password != "":
		return nil, fmt.Errorf("sharepoint kerberos: %s@%s has both a password and a keytab: use one", user, realm)
	}
	spn := kc.SPN
	if spn == "" {
		spn = "HTTP/" + strings.ToLower(site.Hostname())
	}
	if svc, host, ok := strings.Cut(spn, "/"); !ok || svc == "" || host == "" || strings.ContainsAny(spn, "@ \t") {
		return nil, fmt.Errorf("sharepoint kerberos: SPN %q: want service/host, e.g. HTTP/sp.corp.example.com", spn)
	}
	confPath := kc.Krb5Conf
	if confPath == "" {
		confPath = DefaultKrb5Conf
	}
	text, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("sharepoint kerberos: krb5.conf: %w", err)
	}
	conf, err := config.NewFromString(string(text))
	var unsupported config.UnsupportedDirective
	if err != nil && !errors.As(err, &unsupported) {
		return nil, fmt.Errorf("sharepoint kerberos: krb5.conf %s: %w", confPath, err)
	}
	if !conf.LibDefaults.DNSLookupKDC && !hasKDC(conf, realm) {
		return nil, fmt.Errorf("sharepoint kerberos: %s names no KDC for realm %s: add [realms] %s = { kdc = host } or dns_lookup_kdc = true", confPath, realm, realm)
	}
	settings := []func(*client.Settings){
		// Active Directory does not offer FAST armouring to this client.
		client.DisablePAFXFAST(true),
		client.Logger(slog.NewLogLogger(log.With("part", "kerberos").Handler(), slog.LevelDebug)),
	}
	k := &kerberos{principal: user + "@" + realm, spn: spn, password: auth.Password}
	if kc.Keytab != "" {
		kt, err := keytab.Load(kc.Keytab)
		if err != nil {
			return nil, fmt.Errorf("sharepoint kerberos: keytab %s: %w", kc.Keytab, err)
		}
		k.newClient = func() *client.Client { return client.NewWithKeytab(user, realm, kt, conf, settings...) }
	} else {
		pw := string(auth.Password)
		k.newClient = func() *client.Client { return client.NewWithPassword(user, realm, pw, conf, settings...) }
	}
	return k, nil
}

func hasKDC(conf *config.Config, realm string) bool {
	for _, r := range conf.Realms {
		if r.Realm == realm && len(r.KDC) > 0 {
			return true
		}
	}
	return false
}

// authorize sets req's Negotiate header, logging in first when there is no
// valid TGT. It returns the generation of the client that made the token,
// for reset.
func (k *kerberos) authorize(req *http.Request) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return 0, errors.New("sharepoint kerberos: the client is closed")
	}
	if k.refused != nil {
		return 0, k.refused
	}
	if k.cl == nil {
		k.cl = k.newClient()
		k.gen++
	}
	if err := k.cl.AffirmLogin(); err != nil {
		err = k.failure("log in as "+k.principal, err)
		if errors.Is(err, ErrKerberosCredentials) {
			k.refused = err
		}
		return 0, err
	}
	tkt, key, err := k.cl.GetServiceTicket(k.spn)
	if err != nil {
		return 0, k.failure("get a ticket for "+k.spn+" as "+k.principal, err)
	}
	init, err := spnego.NewNegTokenInitKRB5(k.cl, tkt, key)
	if err != nil {
		return 0, k.failure("make the Negotiate token for "+k.spn, err)
	}
	tok := spnego.SPNEGOToken{Init: true, NegTokenInit: init}
	b, err := tok.Marshal()
	if err != nil {
		return 0, k.failure("make the Negotiate token for "+k.spn, err)
	}
	req.Header.Set("Authorization", "Negotiate "+base64.StdEncoding.EncodeToString(b))
	return k.gen, nil
}

// reset drops the tickets of client generation gen, so that the next
// request logs in afresh; a later generation is kept.
func (k *kerberos) reset(gen int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl != nil && k.gen == gen {
		k.cl.Destroy()
		k.cl = nil
	}
}

// close stops gokrb5's renewal goroutine and forgets the tickets.
func (k *kerberos) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl != nil {
		k.cl.Destroy()
		k.cl = nil
	}
	k.closed = true
}

// failure turns a gokrb5 error into ours: the operation, a sentinel where
// one fits, advice, and the KDC's error name (or gokrb5's text, with any
// trace of the password removed).
func (k *kerberos) failure(op string, err error) error {
	detail := err.Error()
	if k.password != "" {
		detail = strings.ReplaceAll(detail, string(k.password), "[redacted]")
	}
	has := func(marks ...string) bool {
		for _, m := range marks {
			if strings.Contains(detail, m) {
				return true
			}
		}
		return false
	}
	var sentinel error
	var advice string
	switch {
	case has("KDC_ERR_PREAUTH_FAILED", "KRB_AP_ERR_BAD_INTEGRITY", "password/keytab incorrect"):
		sentinel, advice = ErrKerberosCredentials, "fix the SharePoint account's password or keytab in the agent configuration and restart the agent; "+
			"it will not try this one again, lest the account be locked out"
	case has("KDC_ERR_C_PRINCIPAL_UNKNOWN"):
		sentinel, advice = ErrKerberosUnknownPrincipal, "check the username and realm"
	case has("KDC_ERR_S_PRINCIPAL_UNKNOWN"):
		sentinel, advice = ErrKerberosUnknownService, "register the SPN for the web application's account (setspn -S), or set the SPN it has"
	case has("Networking_Error", "communicate with KDC", "error sending to a KDC"):
		sentinel, advice = ErrKDCUnreachable, "check the KDCs in krb5.conf and the network path to them (port 88, UDP and TCP)"
	case has("KDC_ERR_CLIENT_REVOKED"):
		advice = "the account is disabled, locked out or expired"
	case has("KDC_ERR_KEY_EXPIRED"):
		advice = "the account's password has expired"
	case has("KRB_AP_ERR_SKEW"):
		advice = "this machine's clock and the KDC's differ by more than the allowed skew"
	case has("KDC_ERR_ETYPE_NOSUPP"):
		advice = "the KDC and the client share no encryption type: enable AES for the account"
	default:
		return fmt.Errorf("sharepoint kerberos: %s: %s", op, detail)
	}
	if sentinel == nil {
		return fmt.Errorf("sharepoint kerberos: %s: %s (%s)", op, advice, kdcError(detail))
	}
	return fmt.Errorf("sharepoint kerberos: %s: %w: %s (%s)", op, sentinel, advice, kdcError(detail))
}

// kdcError is the KDC's error in detail ("(24) KDC_ERR_PREAUTH_FAILED
// Pre-authentication information was invalid"), or detail itself, cut short.
func kdcError(detail string) string {
	if i := strings.LastIndex(detail, "KRB Error: "); i >= 0 {
		name, _, _ := strings.Cut(detail[i+len("KRB Error: "):], " - ")
		return name
	}
	if len(detail) > 400 {
		detail = detail[:400] + "..."
	}
	return detail
}
