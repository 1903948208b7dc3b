package store

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestTextType(t *testing.T) {
	for _, tc := range []struct {
		contentType, name, want string
	}{
		{"text/plain", "a.bin", "text/plain"},
		{"text/plain; charset=utf-8", "a", "text/plain"},
		{"TEXT/HTML; charset=iso-8859-1", "a", "text/html"},
		{"text/markdown", "", "text/markdown"},
		{"text/x-markdown", "", "text/markdown"},
		{"text/csv", "", "text/csv"},
		{"application/json", "", "application/json"},
		{"", "Notes.TXT", "text/plain"},
		{"", "readme.md", "text/markdown"},
		{"application/octet-stream", "data.json", "application/json"},
		{"", "page.htm", "text/html"},
		{"application/pdf", "report.pdf", ""},
		{"", "plan.docx", ""},
		{"", "noext", ""},
		{"not a / media type;;", "x.csv", "text/csv"},
		{"image/png", "pic.png", ""},
	} {
		if got := textType(tc.contentType, tc.name); got != tc.want {
			t.Errorf("textType(%q, %q): got %q, want %q", tc.contentType, tc.name, got, tc.want)
		}
	}
}

func utf16Bytes(s string, bigEndian bool) []byte {
	var b []byte
	if bigEndian {
		b = []byte{0xFE, 0xFF}
	} else {
		b = []byte{0xFF, 0xFE}
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

func TestExtractText(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        []byte
		mediaType string
		max       int64
		want      string
	}{
		{"plain", []byte("hello world"), "text/plain", 100, "hello world"},
		{"utf-8 bom", []byte("\xEF\xBB\xBFhello"), "text/plain", 100, "hello"},
		{"utf-16le", utf16Bytes("héllo 日本", false), "text/plain", 100, "héllo 日本"},
		{"utf-16be", utf16Bytes("héllo 日本", true), "text/csv", 100, "héllo 日本"},
		{"invalid utf-8 dropped", []byte("ok\xff\xfeok"), "text/plain", 100, "okok"},
		{"cut inside a rune", []byte("ab日"), "text/plain", 4, "ab"},
		{"limit", []byte("0123456789"), "text/plain", 4, "0123"},
		{"html", []byte(`<html><head><title>T</title><style>p{}</style><script>x()</script></head>
			<body><p>Hello&nbsp;<b>big</b>   world &amp; co</p><br/><!-- hidden --><div>next</div></body></html>`),
			"text/html", 1000, "T Hello big world & co next"},
		{"html not closed", []byte("<p>open <script>never closed"), "text/html", 1000, "open"},
		{"markdown kept as is", []byte("# Title\n*x*"), "text/markdown", 100, "# Title\n*x*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := extractText(strings.NewReader(string(tc.in)), tc.mediaType, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFTSQuery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", `"hello"`},
		{"hello world", `"hello" "world"`},
		{`say "hi"`, `"say" """hi"""`},
		{"O'Brien's #1 100%", `"O'Brien's" "#1" "100%"`},
		{"a OR b", `"a" "OR" "b"`},
		{"* - ( ) :", ""},
		{"", ""},
		{"日本語", `"日本語"`},
		{"a\x00b\tc", `"a" "b" "c"`},
	} {
		if got := ftsQuery(tc.in); got != tc.want {
			t.Errorf("ftsQuery(%q): got %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCheckTenant(t *testing.T) {
	for _, tc := range []struct {
		tenant string
		ok     bool
	}{
		{"acme", true},
		{"a", true},
		{"acme-corp-2", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-acme", false},
		{"acme-", false},
		{"Acme", false},
		{"acme.corp", false},
		{"../acme", false},
		{"acme/x", false},
		{`acme\x`, false},
		{"acme\x00", false},
	} {
		err := checkTenant(tc.tenant)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("checkTenant(%q): got %v, want ok=%v", tc.tenant, err, tc.ok)
		}
	}
}

func TestMissingBlobErrorMessage(t *testing.T) {
	e := &MissingBlobError{Missing: []MissingBlob{{0, "a"}, {1, "b"}, {2, "c"}, {3, "d"}, {4, "e"}}}
	want := "blob not uploaded: upserts[0].content_sha256 a, upserts[1].content_sha256 b, upserts[2].content_sha256 c and 2 more"
	if got := e.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&HashMismatchError{Want: "aa", Got: "bb", Size: 3}, "blob content hashes to bb, not aa (3 bytes)"},
		{&BatchConflictError{ID: "b-1"}, `batch "b-1" was applied before with different content`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
