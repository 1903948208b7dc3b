package crawl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
)

// ErrNotServed is returned by OpenFile for a file outside what the agent
// crawls: a site that is not configured, a web outside the site, or a path
// excluded by configuration.
var ErrNotServed = errors.New("not served by this agent")

// OpenFile streams the current content of a file of a crawled site, for
// on-demand reads from the relay. site is the site collection URL as
// configured, webURL the (sub)web's absolute URL and serverRelativePath
// the file's server-relative URL. Only reads are possible, and only of
// what the crawl itself may read.
func (c *Crawler) OpenFile(ctx context.Context, site, webURL, serverRelativePath string) (io.ReadCloser, error) {
	s := c.site(site)
	if s == nil {
		return nil, fmt.Errorf("site %s: %w", site, ErrNotServed)
	}
	su, err := url.Parse(s.site)
	if err != nil {
		return nil, err
	}
	wu, err := url.Parse(webURL)
	if err != nil || !strings.EqualFold(wu.Host, su.Host) || wu.Scheme != su.Scheme ||
		!within(wu.Path, su.Path) {
		return nil, fmt.Errorf("web %q is not within site %s: %w", webURL, s.site, ErrNotServed)
	}
	clean := path.Clean("/" + serverRelativePath)
	if clean != serverRelativePath || !within(clean, wu.Path) || clean == strings.TrimSuffix(wu.Path, "/") {
		return nil, fmt.Errorf("path %q is not a file within web %s: %w", serverRelativePath, webURL, ErrNotServed)
	}
	if s.excluded(clean) {
		return nil, fmt.Errorf("path %q is excluded: %w", serverRelativePath, ErrNotServed)
	}
	return s.sp.OpenFile(ctx, webURL, clean)
}

// site returns the crawler of the configured site u, or nil.
func (c *Crawler) site(u string) *siteCrawler {
	for _, s := range c.sites {
		if strings.EqualFold(strings.TrimSuffix(s.site, "/"), strings.TrimSuffix(u, "/")) {
			return s
		}
	}
	return nil
}

// within reports whether the URL path p is dir or lies under it.
func within(p, dir string) bool {
	dir = strings.TrimSuffix(dir, "/")
	return strings.EqualFold(p, dir) || strings.HasPrefix(strings.ToLower(p), strings.ToLower(dir)+"/")
}
