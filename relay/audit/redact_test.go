package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/audit"
)

func TestRedact(t *testing.T) {
	long := strings.Repeat("x", audit.MaxString+1)
	longSum := sha256.Sum256([]byte(long))
	ints := make([]int, 150)
	for i := range ints {
		ints[i] = i
	}
	var want150 strings.Builder
	want150.WriteString("[")
	for i := range audit.MaxArray {
		fmt.Fprintf(&want150, "%d,", i)
	}
	want150.WriteString(`"[truncated: 150 items, 100 kept]"]`)

	type creds struct {
		Name string            `json:"name"`
		Key  connectors.Secret `json:"key"`
		Ptr  *connectors.Secret
		Pass string `json:"Password"`
	}
	ptr := connectors.Secret("p")
	tests := []struct {
		name string
		in   any
		want string
	}{
		{
			name: "nested secret keys, any case and separator",
			in: json.RawMessage(`{"user":"bob","auth":{"password":"p","Token":"t","nested":{"client_secret":"c","X-Api-Key":"k",` +
				`"accessKey":"a","PRIVATE_KEY":"pk","Set-Cookie":"s","sessionId":"s","userCredentials":"u","sig_nature":"s","ok":1}}}`),
			want: `{"auth":{"Token":"[redacted]","nested":{"PRIVATE_KEY":"[redacted]","Set-Cookie":"[redacted]","X-Api-Key":"[redacted]",` +
				`"accessKey":"[redacted]","client_secret":"[redacted]","ok":1,"sessionId":"[redacted]","sig_nature":"[redacted]",` +
				`"userCredentials":"[redacted]"},"password":"[redacted]"},"user":"bob"}`,
		},
		{
			name: "secret key hides a whole object or array",
			in:   map[string]any{"credentials": map[string]any{"user": "u", "pw": "p"}, "tokens": []string{"a", "b"}},
			want: `{"credentials":"[redacted]","tokens":"[redacted]"}`,
		},
		{
			name: "secret keys inside arrays",
			in:   json.RawMessage(`[{"authorization":"Bearer x"},{"n":[{"apikey":"k"}]}]`),
			want: `[{"authorization":"[redacted]"},{"n":[{"apikey":"[redacted]"}]}]`,
		},
		{name: "long array cut", in: ints, want: want150.String()},
		{name: "array at the limit kept", in: ints[:audit.MaxArray], want: mustJSON(ints[:audit.MaxArray])},
		{
			name: "long string summarised",
			in:   map[string]string{"body": long},
			want: fmt.Sprintf(`{"body":{"bytes":%d,"redacted":"large","sha256":"%s"}}`, len(long), hex.EncodeToString(longSum[:])),
		},
		{name: "string at the limit kept", in: long[1:], want: `"` + long[1:] + `"`},
		{
			name: "Secret inside a struct",
			in:   creds{Name: "svc", Key: "k-value", Ptr: &ptr, Pass: "hunter2"},
			want: `{"Password":"[redacted]","Ptr":"[redacted]","key":"[redacted]","name":"svc"}`,
		},
		{name: "Secret alone", in: connectors.Secret("x"), want: `"[redacted]"`},
		{name: "map of Secrets", in: map[string]connectors.Secret{"a": "x"}, want: `{"a":"[redacted]"}`},
		{
			name: "credential values under innocent keys",
			in: map[string]string{"h": "Bearer abc.def", "b": "basic dXNlcjpwYXNz", "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
				"pem": "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----", "plain": "bearer-of-news"},
			want: `{"b":"[redacted]","h":"[redacted]","jwt":"[redacted]","pem":"[redacted]","plain":"bearer-of-news"}`,
		},
		{
			name: "URL credentials",
			in: []string{
				"https://user:p@ss@example.com/a?x=1&sig=abc&access_token=t#frag",
				"https://example.com/cb#access_token=t&state=s",
				"https://x.sharepoint.com/_layouts/download.aspx?UniqueId=1&tempauth=eyJ0",
				"https://example.com/plain?q=1",
				"not a url ://",
			},
			want: `["https://user:[redacted]@example.com/a?x=1&sig=[redacted]&access_token=[redacted]#frag",` +
				`"https://example.com/cb#access_token=[redacted]&state=s",` +
				`"https://x.sharepoint.com/_layouts/download.aspx?UniqueId=1&tempauth=[redacted]",` +
				`"https://example.com/plain?q=1","not a url ://"]`,
		},
		{name: "numbers exactly", in: json.RawMessage(`{"big":12345678901234567890,"f":1.50,"e":1e400}`), want: `{"big":12345678901234567890,"e":1e400,"f":1.50}`},
		{name: "html not escaped", in: map[string]string{"q": "<a>&"}, want: `{"q":"<a>&"}`},
		{name: "raw message pointer", in: new(json.RawMessage(`{"token":"t"}`)), want: `{"token":"[redacted]"}`},
		{name: "scalars", in: json.RawMessage(` true `), want: `true`},
		{name: "null", in: nil, want: `null`},
		{name: "empty raw message", in: json.RawMessage(nil), want: `null`},
		{name: "invalid json", in: json.RawMessage(`{"a":`), want: `"[unparseable: 5 bytes]"`},
		{name: "trailing data", in: json.RawMessage(`{} {}`), want: `"[unparseable: 5 bytes]"`},
		{name: "unencodable value", in: map[string]any{"c": make(chan int)}, want: `"[unencodable: map[string]interface {}]"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := audit.Redact(tc.in)
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("got invalid JSON %s", got)
			}
			if again := audit.Redact(got); string(again) != string(got) && tc.name != "long array cut" {
				t.Errorf("Redact is not idempotent: got %s, then %s", got, again)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// canary is a secret that must never appear in any output, whole or in part.
const canary = "CANARY-7f3a9c1e-d00d-4b5e-SECRET"

// canaryParts are pieces of canary that must not appear either.
var canaryParts = []string{canary, "7f3a9c1e", "d00d-4b5e", "SECRET"}

func noCanary(t *testing.T, what, out string) {
	t.Helper()
	for _, p := range canaryParts {
		if strings.Contains(out, p) {
			t.Errorf("%s: output contains %q: %s", what, p, out)
		}
	}
}

// Config is a struct holding a Secret in an exported field, as relay code
// would.
type Config struct {
	User  string
	Token connectors.Secret
	Ptr   *connectors.Secret
}

func TestSecretNeverPrinted(t *testing.T) {
	s := connectors.Secret(canary)
	cfg := Config{User: "svc", Token: s, Ptr: &s}
	if s.Reveal() != canary {
		t.Fatalf("Reveal: got %q, want the value", s.Reveal())
	}

	tests := []struct {
		name string
		out  func() string
	}{
		{"fmt verbs", func() string {
			return fmt.Sprintf("%v %+v %#v %s %q %x %X %d %10.3s %-20v %T", s, s, s, s, s, s, s, s, s, s, s)
		}},
		{"fmt pointer", func() string { return fmt.Sprintf("%v %+v %s", &s, &s, &s) }},
		{"fmt struct", func() string { return fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg) }},
		{"fmt struct pointer", func() string { return fmt.Sprintf("%v %+v", &cfg, &cfg) }},
		{"fmt slice and map", func() string {
			return fmt.Sprint([]connectors.Secret{s}, map[string]connectors.Secret{"k": s}, map[connectors.Secret]int{s: 1})
		}},
		{"String and GoString", func() string { return s.String() + s.GoString() }},
		{"error wrapping", func() string { return fmt.Errorf("login as %v: %w", s, errors.New("denied")).Error() }},
		{"json", func() string {
			b, err := json.Marshal(map[string]any{"cfg": cfg, "s": s, "list": []connectors.Secret{s}})
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
		{"text", func() string { b, _ := s.MarshalText(); return string(b) }},
		{"slog text", func() string { return logWith(t, false, s, cfg) }},
		{"slog json", func() string { return logWith(t, true, s, cfg) }},
		{"Redact", func() string {
			return string(audit.Redact(map[string]any{"cfg": cfg, "note": "x", "password": canary, "h": "Bearer " + canary}))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out()
			noCanary(t, tc.name, out)
			if !strings.Contains(out, "[redacted]") {
				t.Errorf("%s: got %s, want [redacted] in it", tc.name, out)
			}
		})
	}
}

// logWith logs s and cfg every way slog allows and returns the output.
func logWith(t *testing.T, asJSON bool, s connectors.Secret, cfg Config) string {
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if asJSON {
		h = slog.NewJSONHandler(&buf, nil)
	}
	l := slog.New(h)
	l.Info("login", "secret", s, "cfg", cfg, slog.Any("ptr", &s), slog.Group("g", "s", s))
	l.With("secret", s).WithGroup("grp").Info("again", "cfg", &cfg)
	return buf.String()
}

func TestAppendNeverStoresSecrets(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{}, nil)
	r := newRecord("acme", 0)
	r.Request = audit.Redact(map[string]any{
		"path": "/docs", "headers": map[string]any{"Authorization": "Bearer " + canary, "Cookie": canary},
		"body": Config{User: "u", Token: connectors.Secret(canary)}, "url": "https://h/x?code=" + canary,
	})
	if _, err := l.Append(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(logPath(dir, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	noCanary(t, "stored record", string(b))
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		`{"password":"x","a":[1,2,{"token":"t"}]}`, `"Bearer x"`, `[` + strings.Repeat(`1,`, 120) + `1]`,
		`"https://u:p@h/?sig=1#access_token=2"`, `{"a":`, `1e999`, `"\ud800"`, ` `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := audit.Redact(json.RawMessage(in))
		if !json.Valid(out) {
			t.Fatalf("Redact(%q) = %q, not valid JSON", in, out)
		}
		if json.Valid(in) && len(bytes.TrimSpace(in)) > 0 && bytes.HasPrefix(out, []byte(`"[unparseable`)) {
			t.Fatalf("Redact(%q) refused valid JSON", in)
		}
	})
}
