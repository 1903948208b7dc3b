package sharepoint_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// siteRead is everything one client read from a site collection through
// every call of the client, to compare across OData formats and with the
// emulator's own view.
type siteRead struct {
	Site    sharepoint.Site
	Webs    []sharepoint.Web
	Lists   map[string][]sharepoint.List      // web URL -> its lists
	Items   map[string][]sharepoint.Item      // list ID -> Items, small pages
	After   map[string][]sharepoint.Item      // list ID -> Items after the middle ID
	Item    map[string]sharepoint.Item        // list ID -> Item of its first item
	ByID    map[string][]sharepoint.Item      // list ID -> ItemsByID of every ID and missing ones
	Folders map[string]sharepoint.Item        // folder URL -> FolderItem
	Readers map[string][]sharepoint.Principal // securable -> Readers
	Changes [][]sharepoint.Change             // the change log's pages from the start
	Files   map[string]string                 // file URL -> SHA-256 of OpenFile
	Roles   map[string][]string               // item FileRef -> user logins of Readers (unique items)
	Types   map[string]int                    // Change.ObjectType -> changes
}

const itemsPage = 7 // small pages, so that every list has many next links

// readSite reads the site at siteURL with c through every client call.
func readSite(t *testing.T, c *sharepoint.Client) siteRead {
	t.Helper()
	ctx := context.Background()
	r := siteRead{Lists: map[string][]sharepoint.List{}, Items: map[string][]sharepoint.Item{}, After: map[string][]sharepoint.Item{},
		Item: map[string]sharepoint.Item{}, ByID: map[string][]sharepoint.Item{}, Folders: map[string]sharepoint.Item{},
		Readers: map[string][]sharepoint.Principal{}, Files: map[string]string{}, Roles: map[string][]string{}, Types: map[string]int{}}
	var err error
	if r.Site, err = c.Site(ctx); err != nil {
		t.Fatalf("Site: %v", err)
	}
	if r.Webs, err = c.Webs(ctx); err != nil {
		t.Fatalf("Webs: %v", err)
	}
	for _, w := range r.Webs {
		lists, err := c.Lists(ctx, w)
		if err != nil {
			t.Fatalf("Lists of %s: %v", w.URL, err)
		}
		r.Lists[w.URL] = lists
		if r.Readers["web "+w.URL], err = c.Readers(ctx, w.URL, "web"); err != nil {
			t.Fatalf("Readers of web %s: %v", w.URL, err)
		}
		for _, l := range lists {
			securable := "web/lists(guid'" + l.ID + "')"
			if r.Readers[securable], err = c.Readers(ctx, w.URL, securable); err != nil {
				t.Fatalf("Readers of list %s: %v", l.Title, err)
			}
			var items []sharepoint.Item
			if err := c.Items(ctx, l, 0, itemsPage, func(it sharepoint.Item) error { items = append(items, it); return nil }); err != nil {
				t.Fatalf("Items of %s: %v", l.Title, err)
			}
			r.Items[l.ID] = items
			if len(items) == 0 {
				continue
			}
			mid := items[len(items)/2].ID
			var after []sharepoint.Item
			if err := c.Items(ctx, l, mid, itemsPage, func(it sharepoint.Item) error { after = append(after, it); return nil }); err != nil {
				t.Fatalf("Items of %s after %d: %v", l.Title, mid, err)
			}
			r.After[l.ID] = after
			if r.Item[l.ID], err = c.Item(ctx, l, items[0].ID); err != nil {
				t.Fatalf("Item %d of %s: %v", items[0].ID, l.Title, err)
			}
			ids := []int{900001}
			for _, it := range items {
				ids = append(ids, it.ID)
			}
			var byID []sharepoint.Item
			if err := c.ItemsByID(ctx, l, append(ids, 900002), func(it sharepoint.Item) error { byID = append(byID, it); return nil }); err != nil {
				t.Fatalf("ItemsByID of %s: %v", l.Title, err)
			}
			r.ByID[l.ID] = byID
			files := 0
			for _, it := range items {
				switch {
				case it.IsFolder:
					if r.Folders[it.FileRef], err = c.FolderItem(ctx, w.URL, it.FileRef); err != nil {
						t.Fatalf("FolderItem %s: %v", it.FileRef, err)
					}
				case it.HasFile && (files < 3 || strings.ContainsAny(it.FileRef, "'#%&+")):
					files++
					rc, err := c.OpenFile(ctx, w.URL, it.FileRef)
					if err != nil {
						t.Fatalf("OpenFile %s: %v", it.FileRef, err)
					}
					h := sha256.New()
					_, err = io.Copy(h, rc)
					rc.Close()
					if err != nil {
						t.Fatalf("read %s: %v", it.FileRef, err)
					}
					r.Files[it.FileRef] = hex.EncodeToString(h.Sum(nil))
				}
				if it.HasUniqueRoles {
					securable := fmt.Sprintf("web/lists(guid'%s')/items(%d)", l.ID, it.ID)
					ps, err := c.Readers(ctx, w.URL, securable)
					if err != nil {
						t.Fatalf("Readers of %s: %v", it.FileRef, err)
					}
					r.Readers[securable] = ps
					var users []string
					for _, p := range ps {
						if p.Kind == "user" {
							users = append(users, p.Login)
						}
					}
					sort.Strings(users)
					r.Roles[it.FileRef] = users
				}
			}
		}
	}
	err = c.Changes(ctx, "", func(page []sharepoint.Change) error {
		r.Changes = append(r.Changes, page)
		for _, ch := range page {
			r.Types[ch.ObjectType]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	return r
}

// checkAgainstEmulator compares what the client read with the emulator's
// own snapshot and change log of the site.
// With rich, the site must have folders and items with unique permissions.
func checkAgainstEmulator(t *testing.T, emu *spemu.Server, siteRel string, rich bool, r siteRead) {
	t.Helper()
	byList := map[string][]spemu.Entry{}
	for _, e := range emu.Snapshot() {
		if e.SiteURL == siteRel {
			byList[e.ListID] = append(byList[e.ListID], e)
		}
	}
	visible := 0
	for _, lists := range r.Lists {
		for _, l := range lists {
			visible++
			want := byList[l.ID]
			sort.Slice(want, func(i, j int) bool { return want[i].ItemID < want[j].ItemID })
			got := r.Items[l.ID]
			if len(got) != len(want) {
				t.Errorf("list %s: got %d items, want %d", l.Title, len(got), len(want))
				continue
			}
			for i, e := range want {
				it := got[i]
				if it.ID != e.ItemID || it.FileRef != e.FileRef || it.FileLeafRef != e.Name || it.UniqueID != e.UniqueID ||
					it.Kind() != string(e.Kind) || it.Version != e.Version || it.Length != e.Size || !it.Modified.Equal(e.Modified) {
					t.Errorf("list %s item %d: got %+v\nwant %+v", l.Title, e.ItemID, it, e)
				}
				if sum, ok := r.Files[e.FileRef]; ok && sum != e.SHA256 {
					t.Errorf("%s: got SHA-256 %s, want %s", e.FileRef, sum, e.SHA256)
				}
				if users, ok := r.Roles[e.FileRef]; ok && !slices.Equal(users, e.Readers) {
					t.Errorf("%s: got readers %v, want %v", e.FileRef, users, e.Readers)
				}
			}
			mid := got[len(got)/2].ID
			if after := r.After[l.ID]; len(after) != len(got)-len(got)/2-1 || (len(after) > 0 && after[0].ID <= mid) {
				t.Errorf("list %s: Items after %d read %d items, want %d", l.Title, mid, len(after), len(got)-len(got)/2-1)
			}
			if ids := itemIDs(r.ByID[l.ID]); !slices.Equal(slices.Sorted(slices.Values(ids)), itemIDs(got)) {
				t.Errorf("list %s: ItemsByID read %d items, want the %d that exist", l.Title, len(ids), len(got))
			}
		}
	}
	if visible != len(byList) {
		t.Errorf("got %d lists, want the %d visible ones", visible, len(byList))
	}
	if len(r.Files) == 0 || rich && (len(r.Roles) == 0 || len(r.Folders) == 0) {
		t.Errorf("read %d files, %d unique items and %d folders: the site lacks some", len(r.Files), len(r.Roles), len(r.Folders))
	}
	for ref, f := range r.Folders {
		if f.FileRef != ref || !f.IsFolder || f.ID == 0 {
			t.Errorf("FolderItem %s: got %+v", ref, f)
		}
	}
	log, err := emu.Changes(siteRel)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, ch := range log {
		if ch.Object == "item" || ch.Object == "list" || ch.Object == "web" {
			want = append(want, int64(ch.Type)<<32|int64(ch.ItemID))
		}
	}
	var got []int64
	for _, page := range r.Changes {
		for _, ch := range page {
			got = append(got, int64(ch.Type)<<32|int64(ch.ItemID))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %d changes, want the %d item, list and web changes of the log", len(got), len(want))
	}
	if tok, _ := emu.CurrentChangeToken(siteRel); r.Site.CurrentChangeToken != tok {
		t.Errorf("CurrentChangeToken: got %q, want %q", r.Site.CurrentChangeToken, tok)
	}
}

func itemIDs(items []sharepoint.Item) []int {
	ids := make([]int, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// TestODataFormats reads two sites, one with a library over the view
// threshold, through every client call in verbose, minimalmetadata and
// nometadata, with JSON Light next links absolute, relative to /_api/ or
// alternating. Every format reads the same, and what the emulator holds.
func TestODataFormats(t *testing.T) {
	now := time.Date(2025, 6, 2, 9, 30, 0, 0, time.UTC)
	for _, links := range []struct {
		name  string
		style spemu.NextLinkStyle
	}{{"relative links", spemu.NextLinkRelative}, {"absolute links", spemu.NextLinkAbsolute}, {"alternating links", spemu.NextLinkAlternate}} {
		t.Run(links.name, func(t *testing.T) {
			t.Parallel()
			emu, base := startEmu(t, spemu.Options{ViewThreshold: 120, NextLinks: links.style, Now: func() time.Time { return now }},
				spemu.Spec{Seed: 31, SiteNames: []string{"mkt"}, WebsPerSite: 2, Lists: 1, ItemsPerList: 40, FolderDepth: 1, FolderBreadth: 2, UniqueEvery: 9},
				spemu.Spec{Seed: 32, SiteNames: []string{"big"}, ItemsPerList: 150, PlainNames: true, UniqueEvery: 50})
			for _, site := range []string{"/sites/mkt", "/sites/big"} {
				t.Run(strings.TrimPrefix(site, "/sites/"), func(t *testing.T) {
					reads := map[string]siteRead{}
					for _, mode := range []string{"", sharepoint.ODataVerbose, sharepoint.ODataMinimalMetadata, sharepoint.ODataNoMetadata} {
						rec := newLinkRecorder()
						c := newEmuClient(t, sharepoint.Config{SiteURL: base + site, OData: mode, Transport: rec})
						before := emu.Stats().Requests[spemu.EndpointRenderListData]
						r := readSite(t, c)
						checkAgainstEmulator(t, emu, site, site == "/sites/mkt", r)
						name := mode
						if name == "" {
							name = sharepoint.ODataVerbose
						}
						reads[mode] = r
						if want := "application/json;odata=" + name; rec.accepts[want] == 0 || len(rec.accepts) != 1 {
							t.Errorf("%s: sent Accept %v, want only %s", name, rec.accepts, want)
						}
						if want := "application/json;odata=" + name; rec.ctypes[want] == 0 || len(rec.ctypes) != 1 {
							t.Errorf("%s: sent Content-Type %v, want only %s", name, rec.ctypes, want)
						}
						for fn, bodies := range rec.bodies {
							if fn == "contextinfo" {
								continue // an empty body
							}
							for _, b := range bodies {
								if strings.Contains(b, "__metadata") != (name == sharepoint.ODataVerbose) {
									t.Errorf("%s: %s body %s: __metadata must be there in verbose only", name, fn, b)
								}
							}
						}
						abs, rel := rec.linkKinds()
						switch {
						case site == "/sites/mkt" && abs+rel < 10:
							t.Errorf("%s: only %d next links followed", name, abs+rel)
						case name == sharepoint.ODataVerbose && rel > 0:
							t.Errorf("verbose: %d relative __next links", rel)
						case site == "/sites/big":
						case name != sharepoint.ODataVerbose && links.style == spemu.NextLinkRelative && (abs > 0 || rel == 0):
							t.Errorf("%s: %d absolute and %d relative next links, want relative ones only", name, abs, rel)
						case name != sharepoint.ODataVerbose && links.style == spemu.NextLinkAlternate && (abs == 0 || rel == 0):
							t.Errorf("%s: %d absolute and %d relative next links, want both", name, abs, rel)
						}
						render := emu.Stats().Requests[spemu.EndpointRenderListData] - before
						if site == "/sites/big" && render < 150/itemsPage {
							t.Errorf("%s: %d RenderListDataAsStream pages for the library over the threshold, want %d or more", name, render, 150/itemsPage)
						}
						if site == "/sites/mkt" && render != 0 {
							t.Errorf("%s: %d RenderListDataAsStream requests on a site under the threshold", name, render)
						}
					}
					want := reads[sharepoint.ODataVerbose]
					if !reflect.DeepEqual(reads[""], want) {
						t.Errorf("the default format read differently from verbose:\n%s", firstDiff(reads[""], want))
					}
					if want.Types["SP.ChangeItem"] == 0 || want.Types["SP.ChangeList"] == 0 || want.Types["SP.ChangeWeb"] == 0 {
						t.Errorf("verbose change types %v, want items, lists and webs", want.Types)
					}
					if got := reads[sharepoint.ODataMinimalMetadata]; !reflect.DeepEqual(got, want) {
						t.Errorf("minimalmetadata read differently from verbose:\n%s", firstDiff(got, want))
					}
					// nometadata names no types: ObjectType is empty, the rest equal.
					got := reads[sharepoint.ODataNoMetadata]
					if n := got.Types[""]; len(got.Types) != 1 || n == 0 {
						t.Errorf("nometadata change types %v, want none named", got.Types)
					}
					want.Changes = untyped(want.Changes)
					want.Types, got.Types = nil, nil
					if !reflect.DeepEqual(got, want) {
						t.Errorf("nometadata read differently from verbose:\n%s", firstDiff(got, want))
					}
				})
			}
		})
	}
}

// untyped copies pages without their ObjectType.
func untyped(pages [][]sharepoint.Change) [][]sharepoint.Change {
	out := make([][]sharepoint.Change, len(pages))
	for i, p := range pages {
		out[i] = slices.Clone(p)
		for j := range out[i] {
			out[i][j].ObjectType = ""
		}
	}
	return out
}

// firstDiff names the first field of siteRead where got and want differ.
func firstDiff(got, want siteRead) string {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if reflect.DeepEqual(g, w) {
			continue
		}
		switch gv.Field(i).Kind() {
		case reflect.Map:
			for _, k := range wv.Field(i).MapKeys() {
				a, b := gv.Field(i).MapIndex(k), wv.Field(i).MapIndex(k)
				if !a.IsValid() || !reflect.DeepEqual(a.Interface(), b.Interface()) {
					return fmt.Sprintf("%s[%v]: got %s\nwant %s", name, k, short(a), short(b))
				}
			}
		case reflect.Slice:
			for j := range min(gv.Field(i).Len(), wv.Field(i).Len()) {
				a, b := gv.Field(i).Index(j), wv.Field(i).Index(j)
				if !reflect.DeepEqual(a.Interface(), b.Interface()) {
					return fmt.Sprintf("%s[%d]: got %s\nwant %s", name, j, short(a), short(b))
				}
			}
		}
		return fmt.Sprintf("%s: got %.600v\nwant %.600v", name, g, w)
	}
	return "no difference"
}

func short(v reflect.Value) string {
	if !v.IsValid() {
		return "nothing"
	}
	s := fmt.Sprintf("%+v", v.Interface())
	if len(s) > 800 {
		s = s[:800] + "..."
	}
	return s
}

// TestODataConfig accepts the three formats and nothing else.
func TestODataConfig(t *testing.T) {
	for _, tc := range []struct {
		odata string
		ok    bool
	}{
		{"", true}, {"verbose", true}, {"minimalmetadata", true}, {"nometadata", true},
		{"Verbose", false}, {"fullmetadata", false}, {"odata=verbose", false}, {"json", false},
	} {
		_, err := sharepoint.New(sharepoint.Config{SiteURL: "https://sp.corp.example/sites/mkt", OData: tc.odata})
		if (err == nil) != tc.ok {
			t.Errorf("OData %q: got error %v, want ok %v", tc.odata, err, tc.ok)
		}
	}
}
