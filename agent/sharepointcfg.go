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
}

// SharePointAuth names the account. The password comes from a file or an
// environment variable, never from the configuration or the command line.
type SharePointAuth struct {
	// Method is ntlm (default), basic (https only) or none.
	Method string `yaml:"method"`
	// Username is DOMAIN\user or user@domain.
	Username string `yaml:"username"`
	// PasswordFile holds the password (mode 0600 recommended).
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
}

func (c *SharePointConfig) paths() []*string { return []*string{&c.Auth.PasswordFile, &c.StateDir} }

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
	case "none":
	default:
		errs = append(errs, fmt.Errorf("sharepoint.auth.method %q: want ntlm, basic or none", c.Auth.Method))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("sharepoint.time_zone: %w", err))
		}
	}
	if c.PollInterval < 0 || c.Concurrency < 0 || c.RequestsPerSecond < 0 || c.MaxFileSizeMB < 0 {
		errs = append(errs, errors.New("sharepoint: poll_interval, concurrency, requests_per_second and max_file_size_mb must not be negative"))
	}
	return errs
}

// password reads the SharePoint password; errors never include it.
func (a SharePointAuth) password(getenv func(string) string) (sharepoint.Secret, error) {
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
	pw, err := sp.Auth.password(getenv)
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
	var clients []*sharepoint.Client
	for _, site := range sp.Sites {
		c, err := sharepoint.New(sharepoint.Config{
			SiteURL:           site,
			Auth:              sharepoint.Auth{Method: method, Username: sp.Auth.Username, Password: pw},
			Version:           version,
			RequestsPerSecond: sp.RequestsPerSecond,
			Location:          loc,
			Logger:            log,
		})
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
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
	return crawl.New(crawl.Config{
		Sites: clients, Relay: relay, StateDir: stateDir, PollInterval: sp.PollInterval, FullInterval: sp.FullInterval,
		MaxFileSize: maxSize, Concurrency: sp.Concurrency, IncludeLists: sp.IncludeLists, ExcludeLists: sp.ExcludeLists,
		ExcludePaths: sp.ExcludePaths, Logger: log, Metrics: m,
	})
}
