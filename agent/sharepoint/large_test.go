package sharepoint_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// heapWatch is an io.Writer that samples the heap in use every step bytes
// written and keeps the highest sample.
type heapWatch struct {
	step, next, n int64
	maxInUse      uint64
}

func (h *heapWatch) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.n >= h.next {
		h.next += h.step
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.maxInUse = max(h.maxInUse, ms.HeapInuse)
	}
	return len(p), nil
}

// TestLargeFile streams a 260 MB file through OpenFile, cut once
// mid-stream, and checks its SHA-256 against the emulator's while the
// heap stays far below the file's size.
func TestLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 260 MB")
	}
	const size = 260 << 20
	const maxHeapGrowth = 32 << 20
	emu, base := startEmu(t, spemu.Options{}, spemu.Spec{Seed: 41, SiteNames: []string{"mkt"}, ItemsPerList: 1, PlainNames: true})
	f, err := emu.AddFile("/sites/mkt/Shared Documents", "O'Brien's big #1.bin", spemu.FileSpec{Size: size, Seed: 4141})
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, e := range emu.Snapshot() {
		if e.FileRef == f.FileRef {
			want = e.SHA256
		}
	}
	if want == "" {
		t.Fatalf("%s is not in the emulator's snapshot", f.FileRef)
	}
	emu.ResetDownloadAfter(f.FileRef, 150<<20)
	c := newEmuClient(t, sharepoint.Config{SiteURL: base + "/sites/mkt"})

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse
	start := time.Now()
	rc, err := c.OpenFile(context.Background(), "", f.FileRef)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	watch := &heapWatch{step: 8 << 20}
	n, err := io.Copy(io.MultiWriter(h, watch), rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	t.Logf("%d MB in %v, heap in use %d MiB above the baseline at most", n>>20, time.Since(start).Round(time.Millisecond), (watch.maxInUse-min(baseline, watch.maxInUse))>>20)
	if n != size {
		t.Errorf("got %d bytes, want %d", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("got SHA-256 %s, want the emulator's %s", got, want)
	}
	if r := emu.Stats().Resets; r != 1 {
		t.Errorf("the emulator cut %d downloads, want 1 (resumed with Range)", r)
	}
	if growth := int64(watch.maxInUse) - int64(baseline); growth > maxHeapGrowth {
		t.Errorf("the heap in use grew by %d MiB while streaming, want under %d MiB", growth>>20, maxHeapGrowth>>20)
	}
}

// TestLengthOver2GiB reads a 3 GiB file's item, whose File.Length the
// server sends as a JSON string, in every OData format.
func TestLengthOver2GiB(t *testing.T) {
	const size = 3<<30 + 7
	emu, base := startEmu(t, spemu.Options{}, spemu.Spec{Seed: 42, SiteNames: []string{"mkt"}, ItemsPerList: 3, PlainNames: true})
	f, err := emu.AddFile("/sites/mkt/Shared Documents", "huge.iso", spemu.FileSpec{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{sharepoint.ODataVerbose, sharepoint.ODataMinimalMetadata, sharepoint.ODataNoMetadata} {
		t.Run(mode, func(t *testing.T) {
			rec := newLinkRecorder()
			c := newEmuClient(t, sharepoint.Config{SiteURL: base + "/sites/mkt", OData: mode, Transport: rec})
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
				if l.ID == f.ListID {
					lib = l
				}
			}
			var got []sharepoint.Item
			err = c.Items(ctx, lib, 0, 2, func(it sharepoint.Item) error {
				if it.ID == f.ID {
					got = append(got, it)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			one, err := c.Item(ctx, lib, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, one)
			for _, it := range got {
				if it.Length != size || !it.HasFile {
					t.Errorf("item %d: got Length %d (file %v), want %d", it.ID, it.Length, it.HasFile, int64(size))
				}
			}
			if len(got) != 2 {
				t.Errorf("Items read the file %d times, want once", len(got)-1)
			}
			if !rec.sawBody(`"Length":"` + strconv.FormatInt(size, 10) + `"`) {
				t.Errorf("no response carried Length as the string %q", strconv.FormatInt(size, 10))
			}
		})
	}
}
