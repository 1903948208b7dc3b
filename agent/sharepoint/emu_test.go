package sharepoint_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// startEmu generates specs into an emulator with opts, serves it on
// 127.0.0.1 and returns it with its base URL; it closes when the test ends.
func startEmu(t *testing.T, opts spemu.Options, specs ...spemu.Spec) (*spemu.Server, string) {
	t.Helper()
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	emu := spemu.New(opts)
	for _, sp := range specs {
		if err := emu.Generate(sp); err != nil {
			t.Fatal(err)
		}
	}
	u, err := emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu, u
}

// newEmuClient returns a client with fast retries and no rate limit to
// speak of; cfg's non-zero fields win.
func newEmuClient(t *testing.T, cfg sharepoint.Config) *sharepoint.Client {
	t.Helper()
	if cfg.Version == "" {
		cfg.Version = "test"
	}
	if cfg.RequestsPerSecond == 0 {
		cfg.RequestsPerSecond = 100000
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, 10*time.Millisecond
	}
	c, err := sharepoint.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// linkRecorder is a RoundTripper that records the next links of the JSON
// collections passing through it, and the Accept and Content-Type headers
// the client sent.
type linkRecorder struct {
	next http.RoundTripper

	mu        sync.Mutex
	links     []string            // odata.nextLink and __next values, in order
	accepts   map[string]int      // Accept header -> requests
	ctypes    map[string]int      // Content-Type of POSTs -> requests
	bodies    map[string][]string // POST path suffix -> bodies sent
	requests  []string            // method and URL of every request
	responses []string            // JSON response bodies
}

func newLinkRecorder() *linkRecorder {
	return &linkRecorder{next: http.DefaultTransport.(*http.Transport).Clone(), accepts: map[string]int{},
		ctypes: map[string]int{}, bodies: map[string][]string{}}
}

// RoundTrip records req and the next link of its response.
func (lr *linkRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var sent []byte
	if req.Body != nil && req.Method == http.MethodPost {
		sent, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req = req.Clone(req.Context()) // a RoundTripper must not change its caller's request
		req.Body = io.NopCloser(bytes.NewReader(sent))
	}
	lr.mu.Lock()
	lr.accepts[req.Header.Get("Accept")]++
	lr.requests = append(lr.requests, req.Method+" "+req.URL.String())
	if req.Method == http.MethodPost {
		lr.ctypes[req.Header.Get("Content-Type")]++
		p := req.URL.Path
		lr.bodies[p[strings.LastIndexByte(p, '/')+1:]] = append(lr.bodies[p[strings.LastIndexByte(p, '/')+1:]], string(sent))
	}
	lr.mu.Unlock()
	resp, err := lr.next.RoundTrip(req)
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	lr.mu.Lock()
	lr.responses = append(lr.responses, string(b))
	lr.mu.Unlock()
	var env struct {
		D *struct {
			Next string `json:"__next"`
		} `json:"d"`
		NextLink string `json:"odata.nextLink"`
	}
	if json.Unmarshal(b, &env) == nil {
		link := env.NextLink
		if env.D != nil {
			link = env.D.Next
		}
		if link != "" {
			lr.mu.Lock()
			lr.links = append(lr.links, link)
			lr.mu.Unlock()
		}
	}
	return resp, nil
}

// linkKinds counts the recorded next links that are absolute and relative.
func (lr *linkRecorder) linkKinds() (abs, rel int) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, l := range lr.links {
		if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
			abs++
		} else {
			rel++
		}
	}
	return abs, rel
}

// sawBody reports whether a recorded JSON response contained s.
func (lr *linkRecorder) sawBody(s string) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, b := range lr.responses {
		if strings.Contains(b, s) {
			return true
		}
	}
	return false
}
