package spemu

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
)

// Version selects the SharePoint Server release the emulator imitates.
type Version int

// Versions. The zero value is SP2019.
const (
	// SP2019 is SharePoint Server 2019: CurrentChangeToken on Site and
	// List, and ChangeItem carries UniqueId, FileSystemObjectType,
	// ListTitle and Title.
	SP2019 Version = iota
	// SP2016 is SharePoint Server 2016: CurrentChangeToken on Site and
	// List; ChangeItem has ItemId, ListId, WebId, Editor, ServerRelativeUrl.
	SP2016
	// SP2013 is SharePoint Server 2013: no CurrentChangeToken property, and
	// ChangeItem has only ItemId, ListId and WebId besides the common fields.
	SP2013
)

// String returns "SP2019", "SP2016" or "SP2013".
func (v Version) String() string {
	switch v {
	case SP2019:
		return "SP2019"
	case SP2016:
		return "SP2016"
	case SP2013:
		return "SP2013"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// teamServices is the MicrosoftSharePointTeamServices header value.
func (v Version) teamServices() string {
	switch v {
	case SP2016:
		return "16.0.0.4351"
	case SP2013:
		return "15.0.0.4420"
	}
	return "16.0.0.10337"
}

// NextLinkStyle selects how JSON Light (odata.nextLink) next links are
// written. Verbose __next links are always absolute, as in SharePoint.
type NextLinkStyle int

// Next link styles. The zero value is NextLinkAlternate.
const (
	// NextLinkAlternate alternates, response by response across the
	// server, between an absolute link and one relative to <web>/_api/, so
	// that a client has to handle both.
	NextLinkAlternate NextLinkStyle = iota
	// NextLinkRelative writes links relative to <web>/_api/
	// ("Web/Lists(guid'...')/Items?%24skiptoken=...").
	NextLinkRelative
	// NextLinkAbsolute writes absolute links.
	NextLinkAbsolute
)

// ThresholdMode selects when a GET .../items query on a list holding more
// than Options.ViewThreshold items fails with the list view threshold error
// (HTTP 500, -2147024860 SPQueryThrottledException).
type ThresholdMode int

// Threshold modes. The zero value is ThresholdStrict.
const (
	// ThresholdStrict fails every .../items query (collection, any $top)
	// on a list over the threshold, as the crawler specification states;
	// the client must fall back to RenderListDataAsStream, which works
	// with a RowLimit up to the threshold. Single items (items(N)) work.
	ThresholdStrict ThresholdMode = iota
	// ThresholdIndexed fails only queries SQL could not answer from the ID
	// index: $top above the threshold, a $filter on a field other than Id,
	// or an $orderby other than Id ascending.
	ThresholdIndexed
)

// AuthMode selects how clients authenticate.
type AuthMode int

// Authentication modes. The zero value is AuthNone.
const (
	// AuthNone accepts every request.
	AuthNone AuthMode = iota
	// AuthBasic requires HTTP Basic credentials on every request.
	AuthBasic
	// AuthNTLM requires an NTLMv2 handshake (WWW-Authenticate: NTLM and
	// Negotiate carrying raw NTLMSSP) once per TCP connection; the
	// connection then stays authenticated, as with IIS.
	AuthNTLM
	// AuthKerberos requires a Kerberos ticket for a service principal in
	// Options.Keytab, in an "Authorization: Negotiate" SPNEGO token
	// (RFC 4559), on every request; a request without one gets 401 with
	// WWW-Authenticate: Negotiate, as from IIS offering Kerberos only.
	AuthKerberos
)

// String returns "none", "basic", "ntlm" or "kerberos".
func (m AuthMode) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthBasic:
		return "basic"
	case AuthNTLM:
		return "ntlm"
	case AuthKerberos:
		return "kerberos"
	}
	return fmt.Sprintf("AuthMode(%d)", int(m))
}

// Defaults applied to zero Options fields.
const (
	DefaultRetention     = 60 * 24 * time.Hour
	DefaultViewThreshold = 5000
	DefaultDigestTimeout = 1800 * time.Second
	DefaultDomain        = "CONTOSO"
)

// Options configures a Server. The zero value is a working emulator with
// no authentication, SharePoint 2019 behaviour and the defaults below.
type Options struct {
	// Logger receives request and mutation logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Server.Advance shifts it.
	Now func() time.Time
	// Seed seeds the GUIDs and content of objects the mutation API
	// creates; 0 means 1. Generate uses its Spec.Seed instead.
	Seed uint64
	// Retention is how long the change log keeps changes; 0 means 60 days.
	Retention time.Duration
	// ViewThreshold is the list view threshold (and
	// Site.MaxItemsPerThrottledOperation); 0 means 5000.
	ViewThreshold int
	// Threshold selects when items queries hit the threshold; the zero
	// value is ThresholdStrict.
	Threshold ThresholdMode
	// DigestTimeout is the form digest lifetime
	// (FormDigestTimeoutSeconds); 0 means 1800 s.
	DigestTimeout time.Duration
	// Version is the SharePoint release imitated; the zero value is SP2019.
	Version Version
	// NextLinks selects JSON Light next links; the zero value alternates
	// between absolute and relative links.
	NextLinks NextLinkStyle
	// LocalTimes writes list item Created/Modified and web/list Created in
	// site-local time without offset ("2022-11-26T01:51:46") instead of
	// UTC with "Z". False (the default) writes UTC.
	LocalTimes bool
	// TimeZone is the site-local time zone of LocalTimes and of
	// RenderListDataAsStream display dates; nil means UTC-8 ("PST", no DST).
	TimeZone *time.Location
	// Auth selects authentication; the zero value is AuthNone.
	Auth AuthMode
	// Users maps accounts ("CONTOSO\alice" or "alice") to passwords, for
	// AuthBasic and AuthNTLM. Account names compare case-insensitively.
	Users map[string]string
	// Keytab holds the keys of the service principals (HTTP/host) that
	// AuthKerberos accepts tickets for, as the web application's account
	// holds its SPNs' keys; a ticket for any other principal is refused.
	// Required by AuthKerberos; load it with keytab.Load.
	Keytab *keytab.Keytab
	// Domain is the NetBIOS domain named in NTLM challenges; "" means CONTOSO.
	Domain string
	// HealthScore is the initial X-SharePointHealthScore (0-10); 0 by default.
	HealthScore int
	// PublicURL is the origin ("https://sp.contoso.com") used in absolute
	// URLs; "" means the scheme and Host of each request.
	PublicURL string
	// DisableAdmin turns off the /_emu/ admin API.
	DisableAdmin bool
	// Latency delays every authenticated request this long before it is
	// served, as a farm across a network does (a round trip plus the
	// server's own time); zero serves at once.
	Latency time.Duration
}

// Validate reports the first invalid field, wrapping ErrInvalidOptions.
// New does not fail: it replaces out-of-range values with defaults, so call
// Validate first to reject them instead.
func (o Options) Validate() error {
	switch {
	case o.Retention < 0:
		return fmt.Errorf("%w: Retention %v is negative", ErrInvalidOptions, o.Retention)
	case o.ViewThreshold < 0:
		return fmt.Errorf("%w: ViewThreshold %d is negative", ErrInvalidOptions, o.ViewThreshold)
	case o.DigestTimeout < 0:
		return fmt.Errorf("%w: DigestTimeout %v is negative", ErrInvalidOptions, o.DigestTimeout)
	case o.Version < SP2019 || o.Version > SP2013:
		return fmt.Errorf("%w: unknown Version %d", ErrInvalidOptions, int(o.Version))
	case o.NextLinks < NextLinkAlternate || o.NextLinks > NextLinkAbsolute:
		return fmt.Errorf("%w: unknown NextLinks %d", ErrInvalidOptions, int(o.NextLinks))
	case o.Threshold < ThresholdStrict || o.Threshold > ThresholdIndexed:
		return fmt.Errorf("%w: unknown Threshold %d", ErrInvalidOptions, int(o.Threshold))
	case o.Auth < AuthNone || o.Auth > AuthKerberos:
		return fmt.Errorf("%w: unknown Auth %d", ErrInvalidOptions, int(o.Auth))
	case o.Auth == AuthKerberos && (o.Keytab == nil || len(o.Keytab.Entries) == 0):
		return fmt.Errorf("%w: Auth kerberos needs a Keytab with the service's keys", ErrInvalidOptions)
	case (o.Auth == AuthBasic || o.Auth == AuthNTLM) && len(o.Users) == 0:
		return fmt.Errorf("%w: Auth %v needs Users", ErrInvalidOptions, o.Auth)
	case o.HealthScore < 0 || o.HealthScore > 10:
		return fmt.Errorf("%w: HealthScore %d is outside 0-10", ErrInvalidOptions, o.HealthScore)
	}
	return nil
}

// withDefaults returns o with zero and out-of-range fields replaced.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.ViewThreshold <= 0 {
		o.ViewThreshold = DefaultViewThreshold
	}
	if o.DigestTimeout <= 0 {
		o.DigestTimeout = DefaultDigestTimeout
	}
	if o.Version < SP2019 || o.Version > SP2013 {
		o.Version = SP2019
	}
	if o.NextLinks < NextLinkAlternate || o.NextLinks > NextLinkAbsolute {
		o.NextLinks = NextLinkAlternate
	}
	if o.Threshold < ThresholdStrict || o.Threshold > ThresholdIndexed {
		o.Threshold = ThresholdStrict
	}
	if o.Auth < AuthNone || o.Auth > AuthKerberos {
		o.Auth = AuthNone
	}
	if o.TimeZone == nil {
		o.TimeZone = time.FixedZone("PST", -8*3600)
	}
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	o.HealthScore = min(max(o.HealthScore, 0), 10)
	return o
}
