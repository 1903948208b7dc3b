package proxy

import (
	"strings"
	"testing"
)

// envMap is an environment for tests; get is its getenv.
type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }

func TestFromEnvironment(t *testing.T) {
	const pw = "Env-s3cret-Pw-2Xv"
	tests := []struct {
		name    string
		env     map[string]string
		target  string
		want    string // "" means no proxy
		wantErr string
	}{
		{name: "empty environment", env: nil, target: "relay.example.com:443"},
		{
			name:   "HTTPS_PROXY",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy.corp.example:3128"},
			target: "relay.example.com:443", want: "http://proxy.corp.example:3128",
		},
		{
			name:   "https_proxy in lower case",
			env:    map[string]string{"https_proxy": "http://lower.corp.example:3128"},
			target: "relay.example.com:443", want: "http://lower.corp.example:3128",
		},
		{
			name:   "upper case wins",
			env:    map[string]string{"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128"},
			target: "relay.example.com:443", want: "http://upper:3128",
		},
		{
			name:   "bare host:port with credentials",
			env:    map[string]string{"HTTPS_PROXY": "alice:" + pw + "@proxy:3128"},
			target: "relay.example.com:443", want: "http://alice:" + pw + "@proxy:3128",
		},
		{
			name:   "https proxy",
			env:    map[string]string{"HTTPS_PROXY": "https://proxy.corp.example"},
			target: "relay.example.com:443", want: "https://proxy.corp.example",
		},
		{
			name:   "HTTP_PROXY alone is not used",
			env:    map[string]string{"HTTP_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:3128"},
			target: "relay.example.com:443",
		},
		{
			name:   "blank HTTPS_PROXY falls back to https_proxy",
			env:    map[string]string{"HTTPS_PROXY": "  ", "https_proxy": "http://lower:3128"},
			target: "relay.example.com:443", want: "http://lower:3128",
		},
		{
			name:   "NO_PROXY matches the host",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "other.example.org, relay.example.com"},
			target: "relay.example.com:443",
		},
		{
			name:   "NO_PROXY domain matches subdomains",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "example.com"},
			target: "relay.eu.example.com:443",
		},
		{
			name:   "NO_PROXY leading dot matches subdomains",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".example.com"},
			target: "relay.example.com:443",
		},
		{
			name:   "NO_PROXY suffix must end at a dot",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "example.com"},
			target: "relay.badexample.com:443", want: "http://proxy:3128",
		},
		{
			name:   "NO_PROXY other domain",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".corp.example"},
			target: "relay.example.com:443", want: "http://proxy:3128",
		},
		{
			name:   "NO_PROXY with the target's port",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "relay.example.com:8443"},
			target: "relay.example.com:8443",
		},
		{
			name:   "NO_PROXY with another port",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "relay.example.com:8443"},
			target: "relay.example.com:443", want: "http://proxy:3128",
		},
		{
			name:   "no_proxy in lower case",
			env:    map[string]string{"https_proxy": "http://proxy:3128", "no_proxy": "relay.example.com"},
			target: "relay.example.com:443",
		},
		{
			name:   "NO_PROXY star",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"},
			target: "relay.example.com:443",
		},
		{
			name:   "NO_PROXY CIDR",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "10.0.0.0/8"},
			target: "10.20.30.40:443",
		},
		{
			name:   "loopback always goes direct",
			env:    map[string]string{"HTTPS_PROXY": "http://proxy:3128"},
			target: "127.0.0.1:8443",
		},
		{
			name:    "invalid HTTPS_PROXY names the variable, not the password",
			env:     map[string]string{"HTTPS_PROXY": "http://alice:" + pw + "@proxy:port"},
			target:  "relay.example.com:443",
			wantErr: "environment variable HTTPS_PROXY: parse proxy URL: invalid port",
		},
		{
			name:    "invalid https_proxy",
			env:     map[string]string{"https_proxy": "http://alice:" + pw},
			target:  "relay.example.com:443",
			wantErr: "environment variable https_proxy",
		},
		{
			name:    "socks is not a CONNECT proxy",
			env:     map[string]string{"HTTPS_PROXY": "socks5://alice:" + pw + "@proxy:1080"},
			target:  "relay.example.com:443",
			wantErr: `unsupported scheme "socks5"`,
		},
		{
			name:    "target without port",
			env:     map[string]string{"HTTPS_PROXY": "http://proxy:3128"},
			target:  "relay.example.com",
			wantErr: "want host:port",
		},
		{
			name:    "target without port, no proxy",
			target:  "relay.example.com",
			wantErr: "want host:port",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			pick := FromEnvironment(func(k string) string { calls++; return tt.env[k] })
			callsAfterSetup := calls
			got, err := pick(tt.target)
			if calls != callsAfterSetup {
				t.Errorf("the returned function read the environment: %d more getenv calls, want 0", calls-callsAfterSetup)
			}
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want an error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error: got %q, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, "error", err.Error(), pw)
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			switch {
			case tt.want == "" && got != nil:
				t.Errorf("proxy: got %s, want none (direct)", Redacted(got))
			case tt.want != "" && got == nil:
				t.Errorf("proxy: got none, want %s", tt.want)
			case tt.want != "" && got.String() != tt.want:
				t.Errorf("proxy: got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFromEnvironmentReturnsCopies(t *testing.T) {
	pick := FromEnvironment(envMap{"HTTPS_PROXY": "http://proxy:3128"}.get)
	a, err := pick("relay.example.com:443")
	if err != nil || a == nil {
		t.Fatalf("got %v, %v; want a proxy", a, err)
	}
	a.Host = "changed:1"
	b, _ := pick("relay.example.com:443")
	if b.Host != "proxy:3128" {
		t.Errorf("second result's Host: got %q, want %q (results must not share memory)", b.Host, "proxy:3128")
	}
}

func TestFromEnvironmentNilGetenv(t *testing.T) {
	got, err := FromEnvironment(nil)("relay.example.com:443")
	if got != nil || err != nil {
		t.Errorf("got %v, %v; want no proxy and no error", got, err)
	}
}
