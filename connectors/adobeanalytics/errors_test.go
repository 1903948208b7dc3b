package adobeanalytics

import (
	"strings"
	"testing"
)

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		in, code, msg string
		ok            bool
	}{
		{`{"error_code":"429050","message":"Too many requests"}`, "429050", "Too many requests", true},
		{`{"error_code":"401013","message":"Oauth token is not valid"}`, "401013", "Oauth token is not valid", true},
		{`{"errorCode":"invalid_rsid","errorDescription":"no such suite","errorId":"x"}`, "invalid_rsid", "no such suite", true},
		{`<html>bad gateway</html>`, "", "", false},
		{`{}`, "", "", false},
	} {
		code, msg, ok := parseError([]byte(tc.in))
		if code != tc.code || msg != tc.msg || ok != tc.ok {
			t.Errorf("parseError(%s) = %q, %q, %v; want %q, %q, %v", tc.in, code, msg, ok, tc.code, tc.msg, tc.ok)
		}
	}
}

func FuzzParseError(f *testing.F) {
	f.Add([]byte(`{"error_code":"429050","message":"Too many requests"}`))
	f.Add([]byte(`{"errorCode":"x","errorDescription":"y","errorId":"z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, msg, _ := parseError(b)
		for _, s := range []string{code, msg} {
			if c := clean(s, "tok3n"); len(c) > 303 || strings.Contains(c, "tok3n") {
				t.Errorf("clean(%q) = %q", s, c)
			}
		}
	})
}
