package salesforce

import (
	"strings"
	"testing"
)

func TestParseLimitInfo(t *testing.T) {
	for _, tc := range []struct {
		in          string
		used, limit int
		ok          bool
	}{
		{"api-usage=18/5000", 18, 5000, true},
		{"api-usage=25/15000; per-app-api-usage=17/250(appName=sample-app)", 25, 15000, true},
		{"per-app-api-usage=17/250(appName=x), api-usage=3/100", 3, 100, true},
		{"", 0, 0, false},
		{"api-usage=abc/100", 0, 0, false},
		{"api-usage=5", 0, 0, false},
		{"api-usage=5/0", 0, 0, false},
	} {
		used, limit, ok := parseLimitInfo(tc.in)
		if used != tc.used || limit != tc.limit || ok != tc.ok {
			t.Errorf("parseLimitInfo(%q) = %d, %d, %v; want %d, %d, %v", tc.in, used, limit, ok, tc.used, tc.limit, tc.ok)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, code string
	}{
		{`[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`, "INVALID_SESSION_ID"},
		{`{"error":"invalid_grant","error_description":"expired access/refresh token"}`, "invalid_grant"},
		{`<html>503</html>`, ""},
		{`[]`, ""},
	} {
		errs := parseErrors([]byte(tc.in))
		got := ""
		if len(errs) > 0 {
			got = errs[0].ErrorCode
		}
		if got != tc.code {
			t.Errorf("parseErrors(%s): code %q, want %q", tc.in, got, tc.code)
		}
	}
}

func FuzzParseLimitInfo(f *testing.F) {
	f.Add("api-usage=18/5000")
	f.Add("api-usage=25/15000; per-app-api-usage=17/250(appName=sample-app)")
	f.Fuzz(func(t *testing.T, h string) {
		used, limit, ok := parseLimitInfo(h)
		if ok && (used < 0 || limit <= 0) {
			t.Errorf("parseLimitInfo(%q) = %d/%d", h, used, limit)
		}
	})
}

func FuzzParseErrors(f *testing.F) {
	f.Add([]byte(`[{"message":"x","errorCode":"NOT_FOUND","fields":["Name"]}]`))
	f.Add([]byte(`{"error":"invalid_grant"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range parseErrors(b) {
			if c := clean(e.Message, "secret"); len(c) > 303 || strings.Contains(c, "secret") {
				t.Errorf("clean(%q) = %q", e.Message, c)
			}
		}
	})
}
