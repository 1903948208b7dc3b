package crawl_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// TestOpenFileServesOnlyWhatItCrawls: the relay's on-demand reads reach
// only files of configured sites, within the web named, not excluded, and
// by a clean path.
func TestOpenFileServesOnlyWhatItCrawls(t *testing.T) {
	emu := spemu.New(spemu.Options{})
	if err := emu.Generate(spemu.Spec{Sites: 2, SiteNames: []string{"mkt", "hr"}, ItemsPerList: 5, PlainNames: true}); err != nil {
		t.Fatal(err)
	}
	base, err := emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	site := base + "/sites/mkt"
	sp, err := sharepoint.New(sharepoint.Config{SiteURL: site, Version: "test", Auth: sharepoint.Auth{Method: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	c, err := crawl.New(crawl.Config{Sites: []*sharepoint.Client{sp}, Relay: &crawl.Relay{}, StateDir: t.TempDir(),
		ExcludePaths: []string{"/sites/mkt/Shared Documents/Secret/"}})
	if err != nil {
		t.Fatal(err)
	}
	var file, other spemu.Entry
	for _, e := range emu.Snapshot() {
		switch {
		case e.Kind != spemu.KindFile:
		case e.SiteURL == "/sites/mkt" && e.WebURL == "/sites/mkt" && file.FileRef == "":
			file = e
		case e.SiteURL == "/sites/hr" && other.FileRef == "":
			other = e
		}
	}
	if file.FileRef == "" || other.FileRef == "" {
		t.Fatal("fixture: no files")
	}
	dir := file.FileRef[:strings.LastIndex(file.FileRef, "/")]
	for _, tc := range []struct{ name, site, web, path string }{
		{"site not configured", base + "/sites/hr", base + "/sites/hr", other.FileRef},
		{"web of another site", site, base + "/sites/hr", other.FileRef},
		{"web on another host", site, "http://sp.elsewhere.example/sites/mkt", file.FileRef},
		{"path outside the web", site, site, other.FileRef},
		{"path escaping with ..", site, site, "/sites/mkt/../hr/" + other.FileRef[len("/sites/hr/"):]},
		{"the web itself", site, site, "/sites/mkt"},
		{"excluded path", site, site, "/sites/mkt/Shared Documents/Secret/plan.docx"},
		{"unclean path", site, site, dir + "//" + file.Name},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := c.OpenFile(t.Context(), tc.site, tc.web, tc.path)
			if err == nil {
				rc.Close()
			}
			if !errors.Is(err, crawl.ErrNotServed) {
				t.Errorf("got %v, want ErrNotServed", err)
			}
		})
	}
	rc, err := c.OpenFile(t.Context(), site, base+file.WebURL, file.FileRef)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != file.SHA256 {
		t.Errorf("content sha256 %s, want %s", got, file.SHA256)
	}
}
