package sharepoint_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// TestItemsByID reads changed items a few dozen per request, skips the
// ones that are gone, and falls back to one request per item on a list
// that refuses every query over the view threshold.
func TestItemsByID(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int // the emulator's view threshold
		items     int // files in the library
		// the requests for 100 IDs: ceil(100/40) queries, or one per ID
		// after the one refused query
		wantRequests int
	}{
		{"small list, batched", 5000, 150, 3},
		{"over the threshold, one at a time", 100, 150, 1 + 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu := spemu.New(spemu.Options{ViewThreshold: tc.threshold})
			if err := emu.Generate(spemu.Spec{Sites: 1, SiteNames: []string{"mkt"}, ItemsPerList: tc.items, PlainNames: true}); err != nil {
				t.Fatal(err)
			}
			u, err := emu.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { emu.Close() })
			c, err := sharepoint.New(sharepoint.Config{SiteURL: u + "/sites/mkt", Version: "test", RequestsPerSecond: 10000,
				BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			webs, err := c.Webs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			lists, err := c.Lists(ctx, webs[0])
			if err != nil {
				t.Fatal(err)
			}
			var lib sharepoint.List
			for _, l := range lists {
				if l.IsDocumentLibrary {
					lib = l
				}
			}
			// Every snapshot ID of the library, plus IDs that never existed.
			var exist []int
			for _, e := range emu.Snapshot() {
				if e.ListID == lib.ID {
					exist = append(exist, e.ItemID)
				}
			}
			if len(exist) < 95 {
				t.Fatalf("only %d items in the library", len(exist))
			}
			ids := append(slices.Clone(exist[:95]), 900001, 900002, 900003, 900004, 900005)
			before := emu.Stats().Requests[spemu.EndpointItems]
			var got []int
			err = c.ItemsByID(ctx, lib, ids, func(it sharepoint.Item) error {
				if it.FileRef == "" || it.UniqueID == "" {
					t.Errorf("item %d read without its fields: %+v", it.ID, it)
				}
				got = append(got, it.ID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(exist[:95]))
			if !slices.Equal(got, want) {
				t.Errorf("got %d items %v..., want the %d that exist", len(got), got[:min(5, len(got))], len(want))
			}
			if n := emu.Stats().Requests[spemu.EndpointItems] - before; n != int64(tc.wantRequests) {
				t.Errorf("%d item requests, want %d", n, tc.wantRequests)
			}
		})
	}
}
