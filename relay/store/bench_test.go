package store_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/relay/store/storetest"
)

// BenchmarkApply applies crawl-shaped batches: 200 documents, half of them
// plain text of about 2 KiB carried inline, as the agent sends them.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct {
		name string
		text func(r *rand.Rand) string
	}{
		{"prose", prose},
		{"random-letters", randomLetters},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, err := store.Open(b.Context(), b.TempDir(), store.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			r := rand.New(rand.NewPCG(1, 2))
			item := 0
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				batch := ingestapi.Batch{ID: fmt.Sprint("bench-", i)}
				for j := range 200 {
					item++
					d := storetest.Doc(item, fmt.Sprintf("/sites/bench/Shared Documents/f%d/Document %05d.%s", item/500, item, []string{"txt", "docx"}[j%2]))
					data := []byte(tc.text(r))
					d.ContentSHA256 = storetest.SHA256(data)
					batch.Upserts = append(batch.Upserts, d)
					batch.Blobs = append(batch.Blobs, ingestapi.InlineBlob{SHA256: d.ContentSHA256, Data: data})
				}
				b.StartTimer()
				if _, err := e.Apply(b.Context(), storetest.TenantA, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*200), "us/doc")
		})
	}
}

var vocabulary = strings.Fields(`the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were
her she there been one all we their has would when if so no what up out who them some could can more other then into only its time
market campaign budget quarter revenue customer brand launch report plan review forecast team product design content asset social
email audience segment channel partner agency creative approval deadline invoice contract region sales growth metric target`)

// prose is about 2 KiB of words drawn from a small vocabulary, skewed
// towards its start as word frequencies are.
func prose(r *rand.Rand) string {
	var sb strings.Builder
	for sb.Len() < 2048 {
		i := int(float64(len(vocabulary)) * r.Float64() * r.Float64())
		sb.WriteString(vocabulary[i])
		sb.WriteByte(' ')
	}
	return sb.String()
}

// randomLetters is about 2 KiB like the emulator's generated content:
// letters with spaces, so nearly every word is new.
func randomLetters(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz \n.,e "
	b := make([]byte, 2048)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}
