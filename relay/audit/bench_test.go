package audit_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mcc-bridge/bridge/relay/audit"
)

// BenchmarkAppend appends from many goroutines at once, as the relay's
// request handlers do, to real files with real fsyncs. records/fsync shows
// group commit at work.
func BenchmarkAppend(b *testing.B) {
	for _, tenants := range []int{1, 8} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			l := openLog(b, "", audit.Options{Logger: discard()}, nil)
			recs := make([]audit.Record, tenants)
			for i := range recs {
				recs[i] = newRecord(fmt.Sprintf("tenant-%d", i), i)
			}
			var next atomic.Int64
			b.SetParallelism(16) // 16 × GOMAXPROCS appenders
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := recs[next.Add(1)%int64(tenants)]
					if _, err := l.Append(b.Context(), r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(max(audit.Syncs(l), 1)), "records/fsync")
		})
	}
}

// BenchmarkQueryCursor reads the last page of a 20,000-record log by
// cursor, the cost of following a tail.
func BenchmarkQueryCursor(b *testing.B) {
	l := openLog(b, "", audit.Options{Logger: discard()}, nil)
	const n = 20000
	done := make(chan error, n)
	for i := range n {
		go func() {
			_, err := l.Append(b.Context(), newRecord("acme", i))
			done <- err
		}()
	}
	for range n {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := l.Query(b.Context(), audit.Query{Tenant: "acme", After: n - 100})
		if err != nil || len(got) != 100 {
			b.Fatalf("got %d records, %v; want 100", len(got), err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines-scanned/s")
}
