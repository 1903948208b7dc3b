package endpoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type sample struct {
	Name    string        `yaml:"name"`
	Timeout time.Duration `yaml:"timeout"`
	Nested  struct {
		Port int `yaml:"port"`
	} `yaml:"nested"`
}

func TestDecodeYAML(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		wantErr []string // all must appear
		check   func(t *testing.T, s sample)
	}{
		{name: "valid", input: "name: a\ntimeout: 5s\nnested:\n  port: 8443\n", check: func(t *testing.T, s sample) {
			if s.Name != "a" || s.Timeout != 5*time.Second || s.Nested.Port != 8443 {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "empty keeps defaults", input: "", check: func(t *testing.T, s sample) {
			if s.Name != "default" {
				t.Errorf("name = %q, want the default kept", s.Name)
			}
		}},
		{name: "unknown top key", input: "name: a\nnmae: b\n", wantErr: []string{"agent.yaml", "line 2", `unknown key "nmae"`}},
		{name: "unknown nested key", input: "nested:\n  prot: 1\n", wantErr: []string{"agent.yaml", "line 2", `unknown key "prot"`}},
		{name: "wrong type", input: "nested:\n  port: many\n", wantErr: []string{"agent.yaml", "line 2", "many"}},
		{name: "bad duration", input: "timeout: soon\n", wantErr: []string{"agent.yaml", "soon"}},
		{name: "two documents", input: "name: a\n---\nname: b\n", wantErr: []string{"more than one YAML document"}},
		{name: "syntax", input: "name: [\n", wantErr: []string{"agent.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sample{Name: "default"}
			err := DecodeYAML("agent.yaml", []byte(tc.input), &s)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got no error, want one mentioning %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestLoadYAMLMissingFile(t *testing.T) {
	var s sample
	err := LoadYAML(filepath.Join(t.TempDir(), "nope.yaml"), &s)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

func TestOps(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	ready := errors.New("no tunnel is up")
	o := &Ops{Gatherer: reg, Ready: func() error { return ready }, Status: func() any { return map[string]int{"links": 2} }}
	if err := o.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + o.BoundAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no tunnel is up") {
		t.Errorf("/readyz = %d %q, want 503 with the reason", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200 once ready", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "test_things_total 3") {
		t.Errorf("/metrics = %d, missing the counter: %q", code, body)
	}
	if code, body := get("/status"); code != 200 || !strings.Contains(body, `"links": 2`) {
		t.Errorf("/status = %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
		t.Errorf("log output %q", buf.String())
	}
	if _, err := NewLogger(&buf, "xml", ""); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := NewLogger(&buf, "", "loud"); err == nil {
		t.Error("level loud accepted")
	}
}

// TestOpsPprof serves Go's profiles only when asked to.
func TestOpsPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		o := &Ops{Pprof: on}
		srv := httptest.NewServer(o.Handler())
		resp, err := http.Get(srv.URL + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: 404, true: 200}[on]; resp.StatusCode != want {
			t.Errorf("pprof %v: /debug/pprof/cmdline = %d, want %d", on, resp.StatusCode, want)
		}
		srv.Close()
	}
}
