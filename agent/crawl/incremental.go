package crawl

import (
	"context"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
)

// incremental reads the change log from the checkpoint's token, a page at
// a time, and delivers each page before moving the token past it.
func (s *siteCrawler) incremental(ctx context.Context) error {
	cp := s.checkpoint()
	if s.lists == nil {
		if err := s.index(ctx); err != nil {
			return err
		}
	}
	err := s.sp.Changes(ctx, cp.ChangeToken, func(page []sharepoint.Change) error {
		if err := s.applyChanges(ctx, page); err != nil {
			return err
		}
		last := page[len(page)-1]
		s.c.cfg.Metrics.changed(s.site, float64(last.Time.Unix()))
		return s.save(func(c *Checkpoint) { c.ChangeToken, c.LastChange = last.Token, last.Time })
	})
	if err != nil {
		return err
	}
	return s.save(func(c *Checkpoint) { c.LastPoll = time.Now().UTC() })
}

// ops collects one page's effect on the store. Deletes and upserts of the
// same key keep the last; a folder delete is delivered on its own, before
// anything after it, so that order within a batch never matters.
type ops struct {
	s       *siteCrawler
	upserts map[ingestapi.Key]upsert
	order   []ingestapi.Key
	deletes map[ingestapi.Key]bool // true: delete the stored subtree too (deleteTree)
}

type upsert struct {
	list sharepoint.List
	item sharepoint.Item
}

func (s *siteCrawler) newOps() *ops {
	return &ops{s: s, upserts: map[ingestapi.Key]upsert{}, deletes: map[ingestapi.Key]bool{}}
}

func (o *ops) upsert(l sharepoint.List, it sharepoint.Item) {
	k := ingestapi.Key{Site: o.s.site, ListID: l.ID, ItemID: it.ID}
	delete(o.deletes, k)
	if _, ok := o.upserts[k]; !ok {
		o.order = append(o.order, k)
	}
	o.upserts[k] = upsert{l, it}
}

// delete removes the document k.
func (o *ops) delete(k ingestapi.Key) {
	delete(o.upserts, k)
	if _, ok := o.deletes[k]; !ok {
		o.deletes[k] = false
	}
}

// deleteTree removes the document k and, if it is a folder, what the relay
// stored under its path: the item is gone from the source, and its
// descendants with it, under whatever name the relay last saw.
func (o *ops) deleteTree(k ingestapi.Key) {
	delete(o.upserts, k)
	o.deletes[k] = true
}

// flush delivers what is collected: deletes first, then upserts in batches.
func (o *ops) flush(ctx context.Context) error {
	if len(o.deletes) > 0 {
		b := &ingestapi.Batch{ID: newGeneration()}
		for k, tree := range o.deletes {
			if tree {
				b.DeleteFolders = append(b.DeleteFolders, k)
			} else {
				b.Deletes = append(b.Deletes, k)
			}
		}
		if err := o.s.deliver(ctx, b, func(*Checkpoint) {}); err != nil {
			return err
		}
	}
	var pending []upsert
	for _, k := range o.order {
		if u, ok := o.upserts[k]; ok {
			pending = append(pending, u)
		}
	}
	for len(pending) > 0 {
		n := min(len(pending), o.s.c.cfg.BatchSize)
		chunk := pending[:n]
		pending = pending[n:]
		// Group by list, as documents() fetches per list.
		var docs []ingestapi.Document
		inline := &inlineBlobs{}
		byList := map[string][]sharepoint.Item{}
		lists := map[string]sharepoint.List{}
		var listOrder []string
		for _, u := range chunk {
			if _, ok := byList[u.list.ID]; !ok {
				listOrder = append(listOrder, u.list.ID)
			}
			byList[u.list.ID] = append(byList[u.list.ID], u.item)
			lists[u.list.ID] = u.list
		}
		for _, id := range listOrder {
			d, err := o.s.documents(ctx, lists[id], byList[id], inline)
			if err != nil {
				return err
			}
			docs = append(docs, d...)
		}
		if err := o.s.deliver(ctx, &ingestapi.Batch{ID: newGeneration(), Upserts: docs, Blobs: inline.blobs}, func(*Checkpoint) {}); err != nil {
			return err
		}
	}
	o.upserts, o.order, o.deletes = map[ingestapi.Key]upsert{}, nil, map[ingestapi.Key]bool{}
	return nil
}

// changedItems reads the items that a page's adds, updates, renames and
// other non-delete changes name, a few dozen per request. Items missing
// from the result are gone.
func (s *siteCrawler) changedItems(ctx context.Context, page []sharepoint.Change) (map[ingestapi.Key]sharepoint.Item, error) {
	ids := map[string][]int{}
	var lists []sharepoint.List
	seen := map[ingestapi.Key]bool{}
	for _, ch := range page {
		if ch.ItemID <= 0 || ch.Type == sharepoint.ChangeDeleteObject || ch.Type == sharepoint.ChangeMoveAway {
			continue
		}
		l, ok, err := s.list(ctx, ch.ListID)
		if err != nil {
			return nil, err
		}
		k := ingestapi.Key{Site: s.site, ListID: l.ID, ItemID: ch.ItemID}
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		if _, ok := ids[l.ID]; !ok {
			lists = append(lists, l)
		}
		ids[l.ID] = append(ids[l.ID], ch.ItemID)
	}
	found := make(map[ingestapi.Key]sharepoint.Item, len(seen))
	for _, l := range lists {
		err := s.sp.ItemsByID(ctx, l, ids[l.ID], func(it sharepoint.Item) error {
			found[ingestapi.Key{Site: s.site, ListID: l.ID, ItemID: it.ID}] = it
			return nil
		})
		if err != nil && !sharepoint.IsNotFound(err) { // a list deleted since: its items are gone
			return nil, err
		}
	}
	return found, nil
}

// applyChanges turns a page of the change log into deliveries.
func (s *siteCrawler) applyChanges(ctx context.Context, page []sharepoint.Change) error {
	items, err := s.changedItems(ctx, page)
	if err != nil {
		return err
	}
	o := s.newOps()
	for _, ch := range page {
		if ch.ItemID <= 0 {
			if err := s.scopeChange(ctx, o, ch); err != nil {
				return err
			}
			continue
		}
		l, ok, err := s.list(ctx, ch.ListID)
		if err != nil {
			return err
		}
		if !ok {
			continue // a hidden or excluded list
		}
		k := ingestapi.Key{Site: s.site, ListID: l.ID, ItemID: ch.ItemID}
		switch ch.Type {
		case sharepoint.ChangeDeleteObject, sharepoint.ChangeMoveAway:
			o.deleteTree(k)
			if ch.ServerRelativeURL != "" && ch.ServerRelativeURL != "/" {
				// A folder delete is logged once, for the folder: its
				// descendants go by path. Deliver it alone and now.
				if err := o.flush(ctx); err != nil {
					return err
				}
				// (The flush deleted under the path the relay stored, which
				// is older if the agent never read a rename.)
				b := &ingestapi.Batch{ID: newGeneration(), DeletePrefixes: []ingestapi.PathPrefix{{Site: s.site, Path: ch.ServerRelativeURL}}}
				if err := s.deliver(ctx, b, func(*Checkpoint) {}); err != nil {
					return err
				}
			}
		default:
			if isRoleChange(ch.Type) {
				// Cached permissions may be stale from here on.
				s.acls, s.folders = map[string][]ingestapi.ACE{}, map[string]folderPerm{}
			}
			it, ok := items[k]
			if !ok {
				o.deleteTree(k) // gone since the change was logged
				continue
			}
			if s.excluded(it.FileRef) {
				o.delete(k)
				continue
			}
			o.upsert(l, it)
			if it.IsFolder && (ch.Type == sharepoint.ChangeRename || ch.Type == sharepoint.ChangeMoveInto || ch.Type == sharepoint.ChangeRestore || isRoleChange(ch.Type)) {
				// The descendants' paths or inherited permissions changed
				// (or they came back) without their own log entries: read
				// them again.
				if err := s.folderItems(ctx, o, l, it.FileRef); err != nil {
					return err
				}
			}
		}
	}
	return o.flush(ctx)
}

// folderItems upserts every item of l below folder.
func (s *siteCrawler) folderItems(ctx context.Context, o *ops, l sharepoint.List, folder string) error {
	prefix := strings.TrimRight(folder, "/") + "/"
	return s.sp.Items(ctx, l, 0, s.c.cfg.PageSize, func(it sharepoint.Item) error {
		if strings.HasPrefix(it.FileRef, prefix) && !s.excluded(it.FileRef) {
			o.upsert(l, it)
		}
		return nil
	})
}

// scopeChange handles list- and web-level changes: a permission change
// re-reads the ACLs of every item it covers; a new or deleted list
// refreshes the index.
func (s *siteCrawler) scopeChange(ctx context.Context, o *ops, ch sharepoint.Change) error {
	switch ch.Type {
	case sharepoint.ChangeRoleAdd, sharepoint.ChangeRoleDelete, sharepoint.ChangeRoleUpdate, sharepoint.ChangeAssignmentAdd,
		sharepoint.ChangeAssignmentDelete, sharepoint.ChangeMemberAdd, sharepoint.ChangeMemberDelete, sharepoint.ChangeScopeAdd, sharepoint.ChangeScopeDelete:
		s.acls = map[string][]ingestapi.ACE{}
		s.folders = map[string]folderPerm{}
		if err := s.index(ctx); err != nil {
			return err
		}
		// A group's members and a role's permissions count wherever the
		// group or role is assigned, unique items included. An assignment
		// or inheritance change on a list or web reaches what inherits from
		// it: its items, and for a web its sub-webs' lists too.
		everywhere := ch.Type == sharepoint.ChangeMemberAdd || ch.Type == sharepoint.ChangeMemberDelete ||
			ch.Type == sharepoint.ChangeRoleAdd || ch.Type == sharepoint.ChangeRoleDelete || ch.Type == sharepoint.ChangeRoleUpdate
		web, webKnown := s.webs[ch.WebID]
		for _, l := range s.sortedLists() {
			if ch.ListID != "" && ch.ListID != l.ID {
				continue
			}
			if ch.ListID == "" && ch.WebID != "" && ch.WebID != l.WebID && !(webKnown && strings.HasPrefix(l.WebURL+"/", web.URL+"/")) {
				continue
			}
			err := s.sp.Items(ctx, l, 0, s.c.cfg.PageSize, func(it sharepoint.Item) error {
				if (everywhere || !it.HasUniqueRoles) && !s.excluded(it.FileRef) {
					o.upsert(l, it)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	case sharepoint.ChangeAdd, sharepoint.ChangeUpdate, sharepoint.ChangeRename, sharepoint.ChangeRestore:
		return s.index(ctx)
	case sharepoint.ChangeDeleteObject:
		if l, ok := s.lists[ch.ListID]; ok && ch.ListID != "" {
			delete(s.lists, ch.ListID)
			if err := o.flush(ctx); err != nil {
				return err
			}
			b := &ingestapi.Batch{ID: newGeneration(), DeletePrefixes: []ingestapi.PathPrefix{{Site: s.site, Path: l.RootFolder}}}
			return s.deliver(ctx, b, func(*Checkpoint) {})
		}
	}
	return nil
}

func isRoleChange(t int) bool {
	switch t {
	case sharepoint.ChangeRoleAdd, sharepoint.ChangeRoleDelete, sharepoint.ChangeRoleUpdate, sharepoint.ChangeAssignmentAdd,
		sharepoint.ChangeAssignmentDelete, sharepoint.ChangeMemberAdd, sharepoint.ChangeMemberDelete, sharepoint.ChangeScopeAdd, sharepoint.ChangeScopeDelete:
		return true
	}
	return false
}

// list finds a list by ID, refreshing the index once when it is unknown.
func (s *siteCrawler) list(ctx context.Context, id string) (sharepoint.List, bool, error) {
	if l, ok := s.lists[id]; ok {
		return l, true, nil
	}
	if err := s.index(ctx); err != nil {
		return sharepoint.List{}, false, err
	}
	l, ok := s.lists[id]
	return l, ok, nil
}
