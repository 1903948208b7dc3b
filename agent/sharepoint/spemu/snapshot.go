package spemu

import (
	"runtime"
	"sort"
	"sync"
	"time"
)

// Entry is one list item of a Snapshot: the source truth a crawler's store
// should equal. Hidden lists are left out, as crawlers skip them.
type Entry struct {
	SiteURL      string    // "/sites/mkt"
	WebURL       string    // server-relative web URL
	ListID       string    // lowercase GUID
	ListTitle    string    //
	ItemID       int       // list item id
	UniqueID     string    // lowercase GUID
	FileRef      string    // server-relative URL
	Name         string    // FileLeafRef
	Kind         Kind      // file, folder or item
	Version      string    // "1.0", "2.0", ...
	Size         int64     // files only
	SHA256       string    // hex SHA-256 of the content; files only
	Modified     time.Time // UTC
	Readers      []string  // user logins that can read it after inheritance, SharePoint groups expanded; sorted
	ReaderGroups []string  // AD security group logins (PrincipalType 4) that can read it; sorted
	ReaderEmails []string  // the reading users' emails; sorted
}

// Snapshot returns every item of every visible list, sorted by FileRef.
// Content hashes are computed by streaming the generator (in parallel,
// memoized per content), so the first snapshot of large files takes time:
// about a second per GiB.
func (s *Server) Snapshot() []Entry {
	type pending struct {
		i int
		c content
	}
	var out []Entry
	var work []pending
	s.mu.RLock()
	cache := map[*scope][3][]string{}
	for _, st := range s.sites {
		var walk func(w *web)
		walk = func(w *web) {
			for _, l := range w.lists {
				if l.hidden {
					continue
				}
				for _, it := range l.items {
					sc := it.effectiveScope()
					rd, ok := cache[sc]
					if !ok {
						us, gs, em := sc.readers()
						rd = [3][]string{us, gs, em}
						cache[sc] = rd
					}
					e := Entry{
						SiteURL: st.url, WebURL: w.url, ListID: l.id.String(), ListTitle: l.title,
						ItemID: it.id, UniqueID: it.uniqueID.String(), FileRef: it.fileRef(), Name: it.name,
						Kind: it.kind(), Version: it.uiVersion(), Modified: it.modified.UTC(),
						Readers: rd[0], ReaderGroups: rd[1], ReaderEmails: rd[2],
					}
					if it.isFile {
						e.Size = it.content.size
						work = append(work, pending{len(out), it.content})
					}
					out = append(out, e)
				}
			}
			for _, sw := range w.subwebs {
				walk(sw)
			}
		}
		walk(st.root)
	}
	s.mu.RUnlock()

	jobs := make(chan pending)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for p := range jobs {
				out[p.i].SHA256 = s.hashOf(p.c)
			}
		})
	}
	for _, p := range work {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].FileRef < out[j].FileRef })
	return out
}
