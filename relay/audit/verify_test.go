package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/relay/audit"
)

func TestVerify(t *testing.T) {
	// lines edits the acme log as a slice of lines, each with its newline.
	type lines = [][]byte
	tests := []struct {
		name    string
		mutate  func(acme, globex lines) lines
		wantSeq uint64 // 0: Verify passes
		reason  string // in the error
	}{
		{name: "untouched", mutate: func(l, _ lines) lines { return l }},
		{
			name: "a byte of a value edited", wantSeq: 3, reason: "hash mismatch",
			mutate: func(l, _ lines) lines { l[2] = bytes.Replace(l[2], []byte("user-2"), []byte("user-3"), 1); return l },
		},
		{
			name: "a byte of the hash edited", wantSeq: 3, reason: "hash mismatch",
			mutate: func(l, _ lines) lines {
				i := bytes.LastIndex(l[2], []byte(`"hash":"`)) + len(`"hash":"`)
				l[2][i] ^= 1
				return l
			},
		},
		{
			name: "a byte of the syntax edited", wantSeq: 3, reason: "does not parse",
			mutate: func(l, _ lines) lines { l[2][0] = '['; return l },
		},
		{
			name: "space inserted", wantSeq: 3, reason: "encoding differs",
			mutate: func(l, _ lines) lines {
				l[2] = bytes.Replace(l[2], []byte(`,"operation"`), []byte(`, "operation"`), 1)
				return l
			},
		},
		{
			name: "field added", wantSeq: 3, reason: "encoding differs",
			mutate: func(l, _ lines) lines {
				l[2] = bytes.Replace(l[2], []byte(`{"timestamp"`), []byte(`{"x":1,"timestamp"`), 1)
				return l
			},
		},
		{
			name: "record deleted", wantSeq: 4, reason: "expected seq 3",
			mutate: func(l, _ lines) lines { return append(l[:2], l[3:]...) },
		},
		{
			name: "first record deleted", wantSeq: 2, reason: "expected seq 1",
			mutate: func(l, _ lines) lines { return l[1:] },
		},
		{
			name: "two records swapped", wantSeq: 4, reason: "expected seq 3",
			mutate: func(l, _ lines) lines { l[2], l[3] = l[3], l[2]; return l },
		},
		{
			name: "record replayed", wantSeq: 3, reason: "expected seq 4",
			mutate: func(l, _ lines) lines { return append(l[:3], append(lines{l[2]}, l[3:]...)...) },
		},
		{
			name: "record edited and re-hashed", wantSeq: 4, reason: "prevHash",
			// A forger who re-hashes an edited record cannot make the next
			// one chain to it without re-hashing the rest of the chain.
			mutate: func(l, _ lines) lines {
				l[2] = forge(t, l[2], func(r *audit.Record) { r.User.ID = "someone-else" })
				return l
			},
		},
		{
			name: "record moved from another tenant", wantSeq: 3, reason: `record of tenant "globex"`,
			mutate: func(l, g lines) lines { l[2] = g[2]; return l },
		},
		{
			name: "torn last line", wantSeq: 6, reason: "torn",
			mutate: func(l, _ lines) lines { return append(l, []byte(`{"timestamp":"2025`)) },
		},
		// Cutting records off the end leaves a valid, shorter chain: only a
		// Head anchored elsewhere reveals it.
		{name: "last record cut off (undetectable)", mutate: func(l, _ lines) lines { return l[:4] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, audit.Options{}, nil)
			appendN(t, l, "acme", 5)
			appendN(t, l, "globex", 5)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			read := func(tenant string) lines {
				b, err := os.ReadFile(logPath(dir, tenant))
				if err != nil {
					t.Fatal(err)
				}
				return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
			}
			acme, globex := read("acme"), read("globex")
			for i := range acme { // SplitAfter left the last line without "\n"
				if !bytes.HasSuffix(acme[i], []byte("\n")) {
					acme[i] = append(acme[i], '\n')
				}
				if !bytes.HasSuffix(globex[i], []byte("\n")) {
					globex[i] = append(globex[i], '\n')
				}
			}
			if err := os.WriteFile(logPath(dir, "acme"), bytes.Join(tc.mutate(acme, globex), nil), 0o600); err != nil {
				t.Fatal(err)
			}

			res, err := audit.Verify(t.Context(), dir)
			if res.Tenants != 2 {
				t.Errorf("got %d tenants, want 2", res.Tenants)
			}
			if tc.wantSeq == 0 {
				if err != nil || len(res.Problems) != 0 {
					t.Fatalf("got %v, problems %q; want none", err, res.Problems)
				}
				return
			}
			ce, ok := errors.AsType[*audit.ChainError](err)
			if !ok || !errors.Is(err, audit.ErrChainBroken) {
				t.Fatalf("got %v, want a *ChainError", err)
			}
			if ce.Tenant != "acme" || ce.Seq != tc.wantSeq || !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("got tenant %s seq %d reason %q, want tenant acme seq %d reason containing %q", ce.Tenant, ce.Seq, ce.Reason, tc.wantSeq, tc.reason)
			}
			if want := fmt.Sprintf("tenant acme: seq %d", tc.wantSeq); !strings.Contains(err.Error(), want) {
				t.Errorf("got error %q, want it to name %q", err, want)
			}
			if len(res.Problems) == 0 || res.Problems[0] != ce.Error() {
				t.Errorf("got problems %q, want the first to be %q", res.Problems, ce.Error())
			}
			for _, p := range res.Problems {
				if strings.Contains(p, "tenant globex") {
					t.Errorf("globex's untouched chain reported: %s", p)
				}
			}
			t.Logf("problems: %q", res.Problems)
		})
	}
}

// forge edits a stored line and re-hashes it as the log would.
func forge(t *testing.T, line []byte, edit func(r *audit.Record)) []byte {
	t.Helper()
	var r audit.Record
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatal(err)
	}
	edit(&r)
	r.Hash = ""
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte(r.PrevHash), b...))
	r.Hash = hex.EncodeToString(sum[:])
	if b, err = json.Marshal(&r); err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestVerifyMissingDir(t *testing.T) {
	if _, err := audit.Verify(t.Context(), t.TempDir()+"/nope"); err == nil || errors.Is(err, audit.ErrChainBroken) {
		t.Fatalf("got %v, want an I/O error", err)
	}
}

func TestVerifyIgnoresOtherEntries(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{}, nil)
	appendN(t, l, "acme", 2)
	l.Close()
	for _, p := range []string{"lost+found", "Not-A-Tenant", "empty-tenant"} {
		if err := os.Mkdir(dir+"/"+p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/README", []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(t.Context(), dir)
	if err != nil || res.Tenants != 1 || res.Records != 2 {
		t.Fatalf("got %+v, %v; want 1 tenant, 2 records", res, err)
	}
	openLog(t, dir, audit.Options{}, nil) // Open skips them too
}
