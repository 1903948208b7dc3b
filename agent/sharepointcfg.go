package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
)

// SharePointConfig is the sharepoint section: what to crawl and how.
type SharePointConfig struct {
	// Sites are the site collection URLs to crawl. Empty turns the crawl off.
	Sites []string `yaml:"sites"`
	// Auth is the account the agent reads SharePoint with.
	Auth SharePointAuth `yaml:"auth"`
	// PollInterval is how often the change log is read. Default 30s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// FullInterval forces a full crawl with reconciliation this long after
	// the last one. Default 0: only when the change token has expired.
	FullInterval time.Duration `yaml:"full_interval"`
	// MaxFileSizeMB skips the content of larger files. Default 100.
	MaxFileSizeMB int64 `yaml:"max_file_size_mb"`
	// Concurrency is how many items are fetched at once. Default 4.
	Concurrency int `yaml:"concurrency"`
	// RequestsPerSecond caps the request rate to SharePoint. Default 20.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// IncludeLists and ExcludeLists filter lists by title (globs).
	IncludeLists []string `yaml:"include_lists"`
	ExcludeLists []string `yaml:"exclude_lists"`
	// ExcludePaths skips items by server-relative path (glob, or prefix ending in /).
	ExcludePaths []string `yaml:"exclude_paths"`
	// StateDir keeps the crawl checkpoints. Default: pki.state_dir/crawl.
	StateDir string `yaml:"state_dir"`
	// TimeZone is the sites' regional time zone (IANA name, e.g.
	// "America/Los_Angeles"), for the dates SharePoint sends without an
	// offset. Default UTC.
	TimeZone string `yaml:"time_zone"`
	// OData is the JSON format asked of SharePoint: verbose (default, every
	// version), or JSON Light minimalmetadata or nometadata (2013 SP1 and
	// later; smaller answers).
	OData string `yaml:"odata"`
}

// SharePointAuth names the account. The password comes from a file or an
// environment variable (or, with kerberos, the keys from a keytab), never
// from the configuration or the command line.
type SharePointAuth struct {
	// Method is ntlm (default), kerberos (SPNEGO Negotiate), basic (https
	// only) or none.
	Method string `yaml:"method"`
	// Username is DOMAIN\user or user@domain; with kerberos, user or
	// user@REALM.
	Username string `yaml:"username"`
	// PasswordFile holds the password (mode 0600 recommended).
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`

	// The keys below apply to method kerberos only.

	// Realm is the Kerberos realm, the AD domain in capitals
	// (CORP.EXAMPLE.COM). Default: the realm of username written
	// user@REALM; one of the two is required.
	Realm string `yaml:"realm"`
	// Krb5Conf is the krb5.conf naming the realm's KDCs. Default
	// /etc/krb5.conf.
	Krb5Conf string `yaml:"krb5_conf"`
	// SPN is the service principal name of the SharePoint web
	// application. Default HTTP/<host of each site URL>.
	SPN string `yaml:"spn"`
	// Keytab is a keytab file with the account's keys, instead of
	// password_file or password_env (mode 0600 recommended). Default none.
	Keytab string `yaml:"keytab"`
}

func (c *SharePointConfig) paths() []*string {
	return []*string{&c.Auth.PasswordFile, &c.Auth.Krb5Conf, &c.Auth.Keytab, &c.StateDir}
}

func (c SharePointConfig) validate() []error {
	if len(c.Sites) == 0 {
		return nil
	}
	var errs []error
	for _, s := range c.Sites {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("sharepoint.sites: %q is not an http(s) URL", s))
		}
	}
	switch c.Auth.Method {
	case "", "ntlm", "basic":
		if c.Auth.Username == "" {
			errs = append(errs, errors.New("sharepoint.auth.username is required"))
		}
		if (c.Auth.PasswordFile == "") == (c.Auth.PasswordEnv == "") {
			errs = append(errs, errors.New("sharepoint.auth: set exactly one of password_file and password_env"))
		}
	case "kerberos":
		errs = append(errs, c.Auth.validateKerberos()...)
	case "none":
	default:
		errs = append(errs, fmt.Errorf("sharepoint.auth.method %q: want ntlm, basic or none, or kerberos", c.Auth.Method))
	}
	if c.Auth.Method != "kerberos" && (c.Auth.Realm != "" || c.Auth.Krb5Conf != "" || c.Auth.SPN != "" || c.Auth.Keytab != "") {
		errs = append(errs, errors.New("sharepoint.auth: realm, krb5_conf, spn and keytab apply only to method kerberos"))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("sharepoint.time_zone: %w", err))
		}
	}
	switch c.OData {
	case "", sharepoint.ODataVerbose, sharepoint.ODataMinimalMetadata, sharepoint.ODataNoMetadata:
	default:
		errs = append(errs, fmt.Errorf("sharepoint.odata %q: want verbose, minimalmetadata or nometadata", c.OData))
	}
	if c.PollInterval < 0 || c.Concurrency < 0 || c.RequestsPerSecond < 0 || c.MaxFileSizeMB < 0 {
		errs = append(errs, errors.New("sharepoint: poll_interval, concurrency, requests_per_second and max_file_size_mb must not be negative"))
	}
	return errs
}

// validateKerberos checks the keys of method kerberos.
func (a SharePointAuth) validateKerberos() []error {
	var errs []error
	user, realm, hasRealm := strings.Cut(a.Username, "@")
	switch {
	case a.Username == "":
		errs = append(errs, errors.New("sharepoint.auth.username is required"))
	case strings.Contains(a.Username, `\`):
		errs = append(errs, fmt.Errorf(`sharepoint.auth.username %q: with kerberos write user or user@REALM, not DOMAIN\user`, a.Username))
	case user == "" || hasRealm && realm == "":
		errs = append(errs, fmt.Errorf("sharepoint.auth.username %q: want user or user@REALM", a.Username))
	}
	switch {
	case hasRealm && a.Realm != "" && realm != a.Realm:
		errs = append(errs, fmt.Errorf("sharepoint.auth: username %q names realm %s but realm is %s", a.Username, realm, a.Realm))
	case !hasRealm && a.Realm == "" && a.Username != "":
		errs = append(errs, errors.New("sharepoint.auth: kerberos needs the realm: set realm, or write username as user@REALM"))
	}
	for _, r := range []string{a.Realm, realm} {
		if r != "" && (r != strings.ToUpper(r) || strings.ContainsAny(r, " \t/@")) {
			errs = append(errs, fmt.Errorf("sharepoint.auth: realm %q: write it in capitals, e.g. CORP.EXAMPLE.COM (the AD domain)", r))
			break
		}
	}
	set := 0
	for _, v := range []string{a.PasswordFile, a.PasswordEnv, a.Keytab} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, errors.New("sharepoint.auth: with kerberos set exactly one of password_file, password_env and keytab"))
	}
	if a.SPN != "" {
		svc, host, ok := strings.Cut(a.SPN, "/")
		if !ok || svc == "" || host == "" || strings.ContainsAny(a.SPN, "@ \t") {
			errs = append(errs, fmt.Errorf("sharepoint.auth.spn %q: want service/host, e.g. HTTP/sp.corp.example.com", a.SPN))
		}
	}
	return errs
}

// Password reads the SharePoint password from password_file or
// password_env (through getenv); "" when neither is set. Errors never
// include it.
func (a SharePointAuth) Password(getenv func(string) string) (sharepoint.Secret, error) {
	switch {
	case a.PasswordFile != "":
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("sharepoint.auth.password_file: %w", err)
		}
		return sharepoint.Secret(strings.TrimRight(string(b), "\r\n")), nil
	case a.PasswordEnv != "":
		v := getenv(a.PasswordEnv)
		if v == "" {
			return "", fmt.Errorf("sharepoint.auth.password_env: the environment variable %s is empty or unset", a.PasswordEnv)
		}
		return sharepoint.Secret(v), nil
	}
	return "", nil
}

// newCrawler builds the crawler for cfg.SharePoint, delivering through relay.
func newCrawler(cfg Config, relay *crawl.Relay, version string, getenv func(string) string, m *crawl.Metrics, log *slog.Logger) (*crawl.Crawler, error) {
	sp := cfg.SharePoint
	clients, err := sp.clients(version, getenv, log)
	if err != nil {
		return nil, err
	}
	stateDir := sp.StateDir
	if stateDir == "" {
		base := cfg.PKI.StateDir
		if base == "" {
			base = "."
		}
		stateDir = base + "/crawl"
	}
	maxSize := sp.MaxFileSizeMB << 20
	cr, err := crawl.New(crawl.Config{
		Sites: clients, Relay: relay, StateDir: stateDir, PollInterval: sp.PollInterval, FullInterval: sp.FullInterval,
		MaxFileSize: maxSize, Concurrency: sp.Concurrency, IncludeLists: sp.IncludeLists, ExcludeLists: sp.ExcludeLists,
		ExcludePaths: sp.ExcludePaths, Logger: log, Metrics: m,
	})
	if err != nil {
		for _, c := range clients {
			c.Close()
		}
		return nil, err
	}
	return cr, nil
}

// clients builds one SharePoint client per site, reading the password
// (or, with kerberos, naming the keytab and krb5.conf).
func (sp SharePointConfig) clients(version string, getenv func(string) string, log *slog.Logger) ([]*sharepoint.Client, error) {
	pw, err := sp.Auth.Password(getenv)
	if err != nil {
		return nil, err
	}
	method := sp.Auth.Method
	if method == "" {
		method = "ntlm"
	}
	loc := time.UTC
	if sp.TimeZone != "" {
		if loc, err = time.LoadLocation(sp.TimeZone); err != nil {
			return nil, fmt.Errorf("sharepoint.time_zone: %w", err)
		}
	}
	auth := sharepoint.Auth{Method: method, Username: sp.Auth.Username, Password: pw}
	if method == "kerberos" {
		auth.Kerberos = sharepoint.Kerberos{Realm: sp.Auth.Realm, Krb5Conf: sp.Auth.Krb5Conf, SPN: sp.Auth.SPN, Keytab: sp.Auth.Keytab}
	}
	var clients []*sharepoint.Client
	for _, site := range sp.Sites {
		c, err := sharepoint.New(sharepoint.Config{
			SiteURL:           site,
			Auth:              auth,
			Version:           version,
			RequestsPerSecond: sp.RequestsPerSecond,
			Location:          loc,
			Logger:            log,
			OData:             sp.OData,
		})
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			return nil, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}
