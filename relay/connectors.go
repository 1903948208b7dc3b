package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics"
	"github.com/mcc-bridge/bridge/connectors/aemassets"
	"github.com/mcc-bridge/bridge/connectors/asana"
	"github.com/mcc-bridge/bridge/connectors/custom"
	"github.com/mcc-bridge/bridge/connectors/quip"
	"github.com/mcc-bridge/bridge/connectors/s3"
	"github.com/mcc-bridge/bridge/connectors/salesforce"
	"github.com/mcc-bridge/bridge/connectors/slack"
	"github.com/mcc-bridge/bridge/connectors/workfront"
)

// ConnectorsConfig is the connectors section: which SaaS systems the
// dispatcher reaches, and where. A system is on when its section is
// present. SharePoint (through the agents) is always on.
type ConnectorsConfig struct {
	Workfront *struct {
		BaseURL string `yaml:"base_url"`
		// CampaignField is the custom field of the campaign id. Default DE:MCC_Campaign_ID.
		CampaignField string `yaml:"campaign_field"`
		// OAuthHeader is where OAuth tokens go: "sessionID" (default) or "bearer".
		OAuthHeader string `yaml:"oauth_header"`
	} `yaml:"workfront"`
	Asana *BaseURLConfig `yaml:"asana"`
	Slack *BaseURLConfig `yaml:"slack"`
	Quip  *BaseURLConfig `yaml:"quip"`
	// Salesforce's base URL is the login host; tokens carry instance_url.
	Salesforce *struct {
		BaseURL    string `yaml:"base_url"`
		APIVersion string `yaml:"api_version"`
	} `yaml:"salesforce"`
	AdobeAnalytics *struct {
		BaseURL         string `yaml:"base_url"`
		GlobalCompanyID string `yaml:"global_company_id"`
	} `yaml:"adobe_analytics"`
	AEMAssets *BaseURLConfig `yaml:"aem_assets"`
	S3        *struct {
		Buckets     []string `yaml:"buckets"`
		RoleARN     string   `yaml:"role_arn"`
		ExternalID  string   `yaml:"external_id"`
		Region      string   `yaml:"region"`
		STSEndpoint string   `yaml:"sts_endpoint"`
		S3Endpoint  string   `yaml:"s3_endpoint"`
	} `yaml:"s3"`
	// Custom names files, each one declarative REST connector
	// (connectors/custom.Definition in YAML).
	Custom []string `yaml:"custom"`
}

// BaseURLConfig is a connector's section when its base URL is all it needs.
type BaseURLConfig struct {
	BaseURL string `yaml:"base_url"`
}

func (c *ConnectorsConfig) paths() []*string {
	var out []*string
	for i := range c.Custom {
		out = append(out, &c.Custom[i])
	}
	return out
}

// build makes the configured SaaS connectors.
func (c *ConnectorsConfig) build(log *slog.Logger) ([]connectors.Connector, error) {
	var out []connectors.Connector
	var errs []error
	add := func(name string, conn connectors.Connector, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("connectors.%s: %w", name, err))
			return
		}
		out = append(out, conn)
	}
	lg := func(id string) *slog.Logger { return log.With("part", "connector", "system", id) }
	if w := c.Workfront; w != nil {
		conn, err := workfront.New(workfront.Config{BaseURL: w.BaseURL, CampaignField: w.CampaignField, OAuthHeader: w.OAuthHeader, Logger: lg("workfront")})
		add("workfront", conn, err)
	}
	if a := c.Asana; a != nil {
		conn, err := asana.New(asana.Config{BaseURL: a.BaseURL, Logger: lg("asana")})
		add("asana", conn, err)
	}
	if s := c.Slack; s != nil {
		conn, err := slack.New(slack.Config{BaseURL: s.BaseURL, Logger: lg("slack")})
		add("slack", conn, err)
	}
	if q := c.Quip; q != nil {
		conn, err := quip.New(quip.Config{BaseURL: q.BaseURL, Logger: lg("quip")})
		add("quip", conn, err)
	}
	if s := c.Salesforce; s != nil {
		conn, err := salesforce.New(salesforce.Config{BaseURL: s.BaseURL, APIVersion: s.APIVersion, Logger: lg("salesforce")})
		add("salesforce", conn, err)
	}
	if a := c.AdobeAnalytics; a != nil {
		conn, err := adobeanalytics.New(adobeanalytics.Config{BaseURL: a.BaseURL, GlobalCompanyID: a.GlobalCompanyID, Logger: lg("adobe_analytics")})
		add("adobe_analytics", conn, err)
	}
	if a := c.AEMAssets; a != nil {
		conn, err := aemassets.New(aemassets.Config{BaseURL: a.BaseURL, Logger: lg("aem_assets")})
		add("aem_assets", conn, err)
	}
	if s := c.S3; s != nil {
		conn, err := s3.New(s3.Config{Buckets: s.Buckets, RoleARN: s.RoleARN, ExternalID: s.ExternalID, Region: s.Region,
			STSEndpoint: s.STSEndpoint, S3Endpoint: s.S3Endpoint, Logger: lg("s3")})
		add("s3", conn, err)
	}
	for _, path := range c.Custom {
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("connectors.custom: %w", err))
			continue
		}
		def, err := custom.ParseDefinition(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("connectors.custom %s: %w", path, err))
			continue
		}
		conn, err := custom.New(def, custom.Config{Logger: lg(def.ID)})
		add("custom "+path, conn, err)
	}
	return out, errors.Join(errs...)
}
