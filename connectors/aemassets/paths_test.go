package aemassets

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestPlanParts(t *testing.T) {
	for _, tc := range []struct {
		name             string
		size             int64
		uris             int
		minPart, maxPart int64
		want             []int64
		ok               bool
	}{
		{"one URI", 100, 1, 1024, 0, []int64{100}, true},
		{"smaller than a part", 100, 5, 1024, 4096, []int64{100}, true},
		{"parts raised to minPartSize", 5000, 5, 1024, 0, []int64{1024, 1024, 1024, 1024, 904}, true},
		{"every URI", 20000, 10, 1024, 4096, []int64{2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000}, true},
		{"uneven split", 10, 3, 1, 0, []int64{4, 4, 2}, true},
		{"too large for the URIs", 5000, 2, 1024, 1024, nil, false},
		{"no URI", 5000, 0, 1, 0, nil, false},
		{"nothing to upload", 0, 1, 1, 0, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planParts(tc.size, tc.uris, tc.minPart, tc.maxPart)
			if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
				t.Errorf("planParts(%d, %d, %d, %d) = %v, %v; want %v, ok %v", tc.size, tc.uris, tc.minPart, tc.maxPart, got, err, tc.want, tc.ok)
			}
		})
	}
}

func FuzzPlanParts(f *testing.F) {
	f.Add(int64(5000), 5, int64(1024), int64(0))
	f.Add(int64(20000), 10, int64(1024), int64(4096))
	f.Fuzz(func(t *testing.T, size int64, uris int, minPart, maxPart int64) {
		if size < 1 || size > 1<<30 || uris < 1 || uris > 10000 || minPart < 0 || minPart > 1<<30 || maxPart < 0 || maxPart > 1<<30 {
			return
		}
		parts, err := planParts(size, uris, minPart, maxPart)
		if err != nil {
			return
		}
		var total int64
		for i, p := range parts {
			total += p
			if p < 1 || (maxPart > 0 && p > maxPart) || (i < len(parts)-1 && p < minPart && p < parts[0]) {
				t.Fatalf("part %d of %v breaks min %d max %d", i, parts, minPart, maxPart)
			}
		}
		if total != size || len(parts) > uris {
			t.Fatalf("parts %v: total %d of %d, %d parts for %d URIs", parts, total, size, len(parts), uris)
		}
	})
}

func TestDAMPath(t *testing.T) {
	c, err := New(Config{BaseURL: "https://author.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/content/dam", "/content/dam", true},
		{"/content/dam/", "/content/dam", true},
		{"/content/dam/a b/c.png", "/content/dam/a b/c.png", true},
		{"/content/damage", "", false},
		{"/content/dam/../../etc", "", false},
		{"/content/dam/a/./b", "", false},
		{"/content/dam//a", "", false},
		{"/content/dam/a?x=1", "", false},
		{"/content/dam/a%2fb", "", false},
		{"/content/dam/a:b", "", false},
		{"/content/dam/a\nb", "", false},
		{"/etc", "", false},
	} {
		got, err := c.damPath(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("damPath(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if got := apiPath("/content/dam/a b/c#1.png"); got != "/api/assets/a%20b/c%231.png" {
		t.Errorf("apiPath = %q", got)
	}
}

// FuzzDAMPath checks that what damPath accepts stays in the DAM and
// matches the payload schema's pattern.
func FuzzDAMPath(f *testing.F) {
	c, _ := New(Config{BaseURL: "https://author.example"})
	re := regexp.MustCompile(pathPattern(c.cfg.DAMRoot))
	for _, s := range []string{"/content/dam/a/b.png", "/content/dam/../x", "/content/dam/a%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := c.damPath(p)
		if err != nil {
			return
		}
		if !re.MatchString(got) || strings.Contains(got, "/../") || strings.HasSuffix(got, "/..") || !strings.HasPrefix(got, "/content/dam") {
			t.Fatalf("damPath(%q) = %q", p, got)
		}
	})
}

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"success":false,"errorMessage":"bad predicate"}`, "bad predicate"},
		{`{"class":["core/response"],"properties":{"status.code":404,"status.message":"Not Found"}}`, "Not Found"},
		{`{"status.code":500,"status.message":"Internal","error":{"class":"x","message":"javax.jcr.RepositoryException"}}`, "javax.jcr.RepositoryException"},
		{`<html><body>404</body></html>`, ""},
	} {
		if got := parseMessage([]byte(tc.in)); got != tc.want {
			t.Errorf("parseMessage(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
