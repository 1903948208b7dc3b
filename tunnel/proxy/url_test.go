package proxy

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	const pw = "Zq9-parse-Secret"
	tests := []struct {
		name    string
		in      string
		want    string // URL.String() on success
		wantErr string // substring of the error; "" means success
	}{
		{name: "bare host:port means http", in: "proxy.corp.example:3128", want: "http://proxy.corp.example:3128"},
		{name: "bare with credentials", in: "alice:" + pw + "@proxy:3128", want: "http://alice:" + pw + "@proxy:3128"},
		{name: "http with credentials", in: "http://alice:" + pw + "@proxy:3128", want: "http://alice:" + pw + "@proxy:3128"},
		{name: "https without port", in: "https://proxy.corp.example", want: "https://proxy.corp.example"},
		{name: "scheme case and blanks", in: "  HTTP://proxy:8080/ \n", want: "http://proxy:8080/"},
		{name: "IPv6", in: "http://[::1]:3128", want: "http://[::1]:3128"},
		{name: "escaped domain user", in: `http://CORP%5Calice:` + pw + `@proxy:8080`, want: `http://CORP%5Calice:` + pw + `@proxy:8080`},
		{name: "empty", in: " ", wantErr: "empty"},
		{name: "socks", in: "socks5://proxy:1080", wantErr: `unsupported scheme "socks5"`},
		{name: "no host", in: "http://", wantErr: "missing host"},
		{name: "no host, credentials", in: "http://alice:" + pw + "@:3128", wantErr: "missing host"},
		{name: "port out of range", in: "http://alice:" + pw + "@proxy:99999", wantErr: "port out of range"},
		{name: "port zero", in: "http://proxy:0", wantErr: "port out of range"},
		{name: "empty port", in: "http://proxy:", wantErr: "empty port"},
		{name: "path", in: "http://alice:" + pw + "@proxy:3128/pac", wantErr: "unexpected path"},
		{name: "query", in: "http://proxy:3128?x=" + pw, wantErr: "unexpected path, query or fragment"},
		// url.Parse quotes all of these inputs, password included, in its errors.
		{name: "password mistaken for a port", in: "http://alice:" + pw, wantErr: "invalid port"},
		{name: "password with a slash", in: "http://alice:" + pw + "/x@proxy:3128", wantErr: "invalid port"},
		{name: "bad escape in password", in: "http://alice:" + pw + "%zz@proxy:3128", wantErr: "invalid %-escape"},
		{name: "space in password", in: "http://alice:" + pw + " x@proxy:3128", wantErr: "invalid character in user name or password"},
		{name: "bad host", in: "http://alice:" + pw + "@pro xy:3128", wantErr: "invalid character in host"},
		{name: "control character", in: "http://alice:" + pw + "@proxy\x7f:3128", wantErr: "parse proxy URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseURL(%q): %v", tt.in, err)
				}
				if got.String() != tt.want {
					t.Errorf("ParseURL(%q): got %q, want %q", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseURL(%q): got %q, want an error containing %q", tt.in, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseURL(%q): got error %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
			assertNoSecret(t, "error", err.Error(), pw)
			// Not even part of it.
			assertNoSecret(t, "error", err.Error(), pw[:6])
		})
	}
}

func TestRedacted(t *testing.T) {
	const pw = "Rd-s3cret:@/%pw"
	tests := []struct {
		name string
		u    *url.URL
		want string
	}{
		{"nil", nil, ""},
		{"no userinfo", &url.URL{Scheme: "http", Host: "proxy:3128"}, "http://proxy:3128"},
		{"user only", &url.URL{Scheme: "http", Host: "proxy:3128", User: url.User("alice")}, "http://alice@proxy:3128"},
		{"user and password", &url.URL{Scheme: "http", Host: "proxy:3128", User: url.UserPassword("alice", pw)}, "http://alice:[redacted]@proxy:3128"},
		{"empty password", &url.URL{Scheme: "https", Host: "proxy", User: url.UserPassword("alice", "")}, "https://alice:[redacted]@proxy"},
		{"domain user", &url.URL{Scheme: "http", Host: "proxy:8080", User: url.UserPassword(`CORP\alice`, pw)}, "http://CORP%5Calice:[redacted]@proxy:8080"},
		{"password equal to user", &url.URL{Scheme: "http", Host: "p:1", User: url.UserPassword("xxxxx", "xxxxx")}, "http://xxxxx:[redacted]@p:1"},
		{"trailing slash", &url.URL{Scheme: "http", Host: "proxy:3128", Path: "/", User: url.UserPassword("alice", pw)}, "http://alice:[redacted]@proxy:3128/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before string
			if tt.u != nil {
				before = tt.u.String()
			}
			got := Redacted(tt.u)
			if got != tt.want {
				t.Errorf("Redacted: got %q, want %q", got, tt.want)
			}
			assertNoSecret(t, "Redacted", got, pw)
			assertNoSecret(t, "Redacted", got, url.QueryEscape(pw))
			if tt.u != nil && tt.u.String() != before {
				t.Errorf("Redacted changed its argument: got %q, want %q", tt.u, before)
			}
		})
	}
}

func TestRedactedParsed(t *testing.T) {
	// Round trip through ParseURL, as main does with configuration.
	const pw = "p@ss:w0rd/with?odd#chars"
	u, err := ParseURL("http://alice:" + url.QueryEscape(pw) + "@proxy.corp.example:3128")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := u.User.Password(); got != pw {
		t.Fatalf("password: got %q, want %q", got, pw)
	}
	if got, want := Redacted(u), "http://alice:[redacted]@proxy.corp.example:3128"; got != want {
		t.Errorf("Redacted: got %q, want %q", got, want)
	}
}
