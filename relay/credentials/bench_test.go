package credentials_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/relay/credentials"
)

var benchReport = flag.Bool("bench.report", false, "run TestCredentialReport: token requests of concurrent callers and lookup cost, printed as BENCH lines")

// BenchmarkCredential measures Credential for an active connection whose
// token is not due: one indexed read of credentials.db and one AES-GCM
// open with the tenant's (cached) data key.
func BenchmarkCredential(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchCredential(b, false) })
	b.Run("parallel", func(b *testing.B) { benchCredential(b, true) })
}

func benchCredential(b *testing.B, parallel bool) {
	e := newEnv(b, testOptions())
	m := e.manager()
	e.connect(m, tenantA, system, e.prov)
	ctx := context.Background()
	req := ownerReq(tenantA, system)
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Credential(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if _, err := m.Credential(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// TestCredentialReport prints the token requests made by 1,000 concurrent
// callers at expiry (one process, and three processes sharing the store)
// and the cost of a lookup. Run with -args -bench.report.
func TestCredentialReport(t *testing.T) {
	if !*benchReport {
		t.Skip("run with -args -bench.report")
	}
	for _, procs := range []int{1, 3} {
		e := newEnv(t, testOptions())
		ms := make([]*credentials.Manager, procs)
		for i := range ms {
			ms[i] = e.manager()
		}
		e.connect(ms[0], tenantA, system, e.prov)
		e.clock.Advance(time.Hour + time.Minute)
		before := e.prov.Requests()
		start := time.Now()
		_, errs := concurrent(t, 1000, ms...)
		took := time.Since(start)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		fmt.Printf("BENCH credentials_token_requests_1000_callers_%d_managers %d requests\n", procs, e.prov.Requests()-before)
		fmt.Printf("BENCH credentials_refresh_1000_callers_%d_managers_wall %.1f ms\n", procs, float64(took.Microseconds())/1000)
	}
	for _, parallel := range []bool{false, true} {
		r := testing.Benchmark(func(b *testing.B) { benchCredential(b, parallel) })
		name := "credentials_lookup_decrypt_rate"
		if parallel {
			name += "_parallel"
		}
		fmt.Printf("BENCH %s %.0f lookups/s\n", name, float64(r.N)/r.T.Seconds())
	}
}
