//go:build unix

package devrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMakeRun is the smoke test of `make run`: run.sh brings up the whole
// stack on free ports in a temporary RUN_DIR, the crawl finishes, the curl it
// prints returns documents, and SIGINT stops everything with status 0; a
// second run reuses the state (no enrollment, same CA, the store keeps the
// documents) and makes its own request without curl, through bash.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay, its CA, the SharePoint emulator and an agent: skipped under -short")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("run.sh needs bash:", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("building the binaries needs the go command:", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	began := time.Now()
	tmp := t.TempDir()
	binDir := filepath.Join(tmp, "bin")
	// The build is bounded by go test's -timeout only: from a cold build
	// cache it takes minutes.
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", binDir+string(filepath.Separator),
		"./agent/cmd/bridge-agent", "./relay/cmd/bridge-relay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	built := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	ports := freePorts(t, 6)
	runDir := filepath.Join(tmp, "run")
	env := append(os.Environ(),
		"RUN_DIR="+runDir, "BIN_DIR="+binDir, "SP_ITEMS=20", "CRAWL_TIMEOUT=90", "STOP_TIMEOUT=40",
		fmt.Sprint("RELAY_PORT=", ports[0]), fmt.Sprint("CA_PORT=", ports[1]), fmt.Sprint("AGENT_OPS_PORT=", ports[2]),
		fmt.Sprint("RELAY_OPS_PORT=", ports[3]), fmt.Sprint("API_PORT=", ports[4]), fmt.Sprint("SP_PORT=", ports[5]))
	site := fmt.Sprintf("http://127.0.0.1:%d/sites/mkt", ports[5])
	api := fmt.Sprintf("http://127.0.0.1:%d/v1/dispatch", ports[4])
	keepSIGINT(t)

	// First run: a new RUN_DIR.
	s := startScript(ctx, t, bash, root, env)
	s.waitFor(ctx, t, "the new-state line", prefix("== new state in "+runDir))
	s.waitFor(ctx, t, "the enrollment", prefix("== enrolling the agent"))
	s.waitFor(ctx, t, "the crawl", crawlDone(t))
	line := s.waitFor(ctx, t, "the dashboard URL", prefix("dashboard "))
	if want := fmt.Sprintf("http://127.0.0.1:%d/status", ports[3]); !strings.Contains(line, want) {
		t.Errorf("dashboard line %q, want %s in it", line, want)
	}
	s.waitFor(ctx, t, "the dev token", prefix("dev token "))
	token := s.waitFor(ctx, t, "the token itself", func(string) bool { return true })
	curl := s.waitFor(ctx, t, "the curl line", prefix("curl "))
	if !strings.Contains(curl, "Bearer "+token+"'") || !strings.Contains(curl, api) {
		t.Errorf("curl line %q: want the token and %s in it", curl, api)
	}
	if l := s.waitFor(ctx, t, "the script's own search", prefix("== the search ")); !foundDocs.MatchString(l) {
		t.Errorf("the script's own search: %q, want %v", l, foundDocs)
	}
	s.waitFor(ctx, t, "the running state", prefix("Ctrl-C stops everything."))
	ready := time.Now()
	checkSearch(ctx, t, curl, site)
	s.interrupt(t)
	stopped := time.Now()
	caRoot := readFile(t, filepath.Join(runDir, "ca", "certs", "root_ca.crt"))
	agentRoot := readFile(t, filepath.Join(runDir, "agent-state", "root.crt"))

	// Second run on the same RUN_DIR, without curl.
	s = startScript(ctx, t, bash, root, append(env, "CURL=/nonexistent/curl"))
	s.waitFor(ctx, t, "the reuse line", prefix("== reusing "+runDir+"/"))
	s.waitFor(ctx, t, "the enrolled-already line", prefix("== the agent is enrolled already"))
	s.waitFor(ctx, t, "the crawl", crawlDone(t))
	curl = s.waitFor(ctx, t, "the curl line", prefix("curl "))
	s.waitFor(ctx, t, "the fallback note", prefix("(/nonexistent/curl is not installed"))
	if l := s.waitFor(ctx, t, "the script's own search", prefix("== the search ")); !foundDocs.MatchString(l) {
		t.Errorf("the script's own search without curl: %q, want %v", l, foundDocs)
	}
	s.waitFor(ctx, t, "the running state", prefix("Ctrl-C stops everything."))
	if l, ok := s.seen("== enrolling"); ok {
		t.Errorf("second run enrolled again: %q", l)
	}
	checkSearch(ctx, t, curl, site)
	s.interrupt(t)
	if got := readFile(t, filepath.Join(runDir, "ca", "certs", "root_ca.crt")); !bytes.Equal(got, caRoot) {
		t.Error("second run: the CA's root changed")
	}
	if got := readFile(t, filepath.Join(runDir, "agent-state", "root.crt")); !bytes.Equal(got, agentRoot) {
		t.Error("second run: the agent's root changed")
	}
	t.Logf("build %s, first run ready in %s and stopped in %s, second run %s; %s in all",
		built.Sub(began).Round(time.Millisecond), ready.Sub(built).Round(time.Millisecond),
		stopped.Sub(ready).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond),
		time.Since(began).Round(time.Millisecond))
}

// foundDocs is run.sh's line on its own search when it found documents.
var foundDocs = regexp.MustCompile(`^== the search found [1-9][0-9]* documents$`)

// script is run.sh running in its own process group, its output (stdout
// and stderr, merged) collected line by line.
type script struct {
	cmd  *exec.Cmd
	pgid int

	mu    sync.Mutex
	lines []string // guarded by mu
	eof   bool     // guarded by mu: every writer of the output is gone

	more   chan struct{} // cap 1: lines were added, or eof
	exited chan struct{} // closed when run.sh has exited; then err is set
	err    error
	next   int // the next line waitFor looks at; test goroutine only
}

func startScript(ctx context.Context, t *testing.T, bash, root string, env []string) *script {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, filepath.Join(root, "installer", "devrun", "run.sh"))
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	s := &script{cmd: cmd, pgid: cmd.Process.Pid, more: make(chan struct{}, 1), exited: make(chan struct{})}
	t.Cleanup(func() {
		syscall.Kill(-s.pgid, syscall.SIGKILL) // whatever is left of the group
		r.Close()
		<-s.exited
		if t.Failed() {
			s.mu.Lock()
			t.Logf("run.sh (pid %d) wrote:\n%s", s.pgid, strings.Join(s.lines, "\n"))
			s.mu.Unlock()
		}
	})
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
			s.notify()
		}
		s.mu.Lock()
		s.eof = true
		s.mu.Unlock()
		s.notify()
	}()
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s
}

func (s *script) notify() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func prefix(p string) func(string) bool {
	return func(l string) bool { return strings.HasPrefix(l, p) }
}

// crawlDone matches the line saying the crawl finished, and fails the test
// on the one saying it did not.
func crawlDone(t *testing.T) func(string) bool {
	return func(l string) bool {
		if strings.HasPrefix(l, "== the crawl has not finished") {
			t.Fatalf("run.sh: %s", l)
		}
		return strings.HasPrefix(l, "== crawl finished")
	}
}

// waitFor returns the first line after the last one returned that match
// reports true for.
func (s *script) waitFor(ctx context.Context, t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	for {
		s.mu.Lock()
		lines, eof := s.lines[s.next:], s.eof
		s.mu.Unlock()
		for _, l := range lines {
			s.next++
			if match(l) {
				return l
			}
		}
		if eof {
			t.Fatalf("run.sh ended its output before %s", what)
		}
		select {
		case <-s.more:
		case <-ctx.Done():
			t.Fatalf("no %s from run.sh in time: %v", what, ctx.Err())
		}
	}
}

// seen returns the first line so far that contains sub.
func (s *script) seen(sub string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			return l, true
		}
	}
	return "", false
}

// interrupt sends SIGINT to the process group, as Ctrl-C does, and checks
// that run.sh stops cleanly with status 0 and leaves no process behind.
func (s *script) interrupt(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-s.pgid, syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT to the process group: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("run.sh did not exit within 60s of SIGINT")
	}
	if s.err != nil {
		t.Errorf("run.sh after SIGINT: %v, want exit status 0", s.err)
	}
	// The output ends when the last process holding it is gone.
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		eof := s.eof
		s.mu.Unlock()
		if eof {
			break
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatal("a child of run.sh still holds its output 10s after it exited")
		}
	}
	if l, ok := s.seen("stopped by itself"); ok {
		t.Errorf("a child stopped before run.sh's trap stopped it: %q", l)
	}
	if _, ok := s.seen("== stopped cleanly"); !ok {
		t.Error(`run.sh did not print "== stopped cleanly"`)
	}
	if l, ok := s.seen("KILLED"); ok {
		t.Errorf("run.sh had to kill: %q", l)
	}
	for i := 0; ; i++ {
		err := syscall.Kill(-s.pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if i == 50 {
			t.Fatalf("process group %d still has members after run.sh exited (kill: %v)", s.pgid, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSearch makes the request of the curl command line run.sh printed,
// with curl when it is installed, else with net/http, and checks that the
// answer holds documents of the emulator's site.
func checkSearch(ctx context.Context, t *testing.T, line, site string) {
	t.Helper()
	args, err := shellWords(line)
	if err != nil {
		t.Fatalf("curl line %q: %v", line, err)
	}
	var (
		url, body string
		header    = http.Header{}
	)
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-sS":
		case (a == "-H" || a == "-d") && i+1 < len(args):
			i++
			if a == "-d" {
				body = args[i]
				break
			}
			k, v, ok := strings.Cut(args[i], ":")
			if !ok {
				t.Fatalf("curl line: header %q", args[i])
			}
			header.Add(k, strings.TrimSpace(v))
		case !strings.HasPrefix(a, "-") && url == "":
			url = a
		default:
			t.Fatalf("curl line %q: unexpected argument %q", line, a)
		}
	}
	if tok, ok := strings.CutPrefix(header.Get("Authorization"), "Bearer "); !ok || strings.Count(tok, ".") != 2 {
		t.Fatalf("curl line: Authorization %q, want a literal bearer JWT", header.Get("Authorization"))
	}
	if !json.Valid([]byte(body)) {
		t.Fatalf("curl line: body %q is not JSON", body)
	}

	var out []byte
	if path, err := exec.LookPath("curl"); err == nil {
		cmd := exec.CommandContext(ctx, path, args[1:]...)
		if out, err = cmd.Output(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s, %v\n%s", url, resp.Status, err, out)
		}
	}

	var got struct {
		TraceID string `json:"traceId"`
		Result  struct {
			Count int `json:"count"`
			Hits  []struct {
				Document struct {
					Site   string `json:"site"`
					ItemID int    `json:"item_id"`
					Path   string `json:"path"`
					Name   string `json:"name"`
					Kind   string `json:"kind"`
				} `json:"document"`
				Score float64 `json:"score"`
			} `json:"hits"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("search answer: %v\n%s", err, out)
	}
	if got.TraceID == "" || got.Result.Count == 0 || got.Result.Count != len(got.Result.Hits) {
		t.Fatalf("search answer: trace %q, count %d, %d hits; want documents\n%s", got.TraceID, got.Result.Count, len(got.Result.Hits), out)
	}
	for i, h := range got.Result.Hits {
		d := h.Document
		if d.Site != site || !strings.HasPrefix(d.Path, "/sites/mkt/") || d.Name == "" || d.ItemID < 1 || h.Score <= 0 {
			t.Errorf("hit %d: site %q, path %q, name %q, item %d, score %v; want a document of %s", i, d.Site, d.Path, d.Name, d.ItemID, h.Score, site)
		}
		switch d.Kind {
		case "file", "item", "folder":
		default:
			t.Errorf("hit %d: kind %q", i, d.Kind)
		}
	}
}

// shellWords splits a command line the way a POSIX shell does for words,
// single and double quotes and backslashes; nothing else is expanded.
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t':
			if in {
				words, in = append(words, cur.String()), false
				cur.Reset()
			}
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i, in = i+1+j, true
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errors.New("unterminated double quote")
			}
			in = true
		case '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "curl -sS http://x/y", []string{"curl", "-sS", "http://x/y"}},
		{"single quotes", `-H 'A: b c' -d '{"q":"x y"}'`, []string{"-H", "A: b c", "-d", `{"q":"x y"}`}},
		{"double quotes", `"a \"b\" $" c\ d`, []string{`a "b" $`, "c d"}},
		{"joined", `a'b'"c"`, []string{"abc"}},
		{"empty", `'' x`, []string{"", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := shellWords(tc.in)
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := shellWords(`'open`); err == nil {
		t.Error("shellWords: want an error for an unterminated quote")
	}
}

// freePorts returns n distinct loopback ports free for TCP and UDP (the
// relay serves QUIC and TCP on one port), held until all are chosen.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var (
		ports   []int
		closers []io.Closer
	)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100 {
			t.Fatal("no free loopback ports")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		closers = append(closers, pc)
		ports = append(ports, port)
	}
	return ports
}

// keepSIGINT makes sure run.sh starts with SIGINT at its default, so that
// its trap works: a shell cannot trap a signal that was ignored when it
// started, as SIGINT is when this test runs in the background of a
// non-interactive shell. Catching it here resets it to the default in the
// children; this process is in another process group, so it sees none of
// the test's signals.
func keepSIGINT(t *testing.T) {
	if !signal.Ignored(os.Interrupt) {
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt)
	t.Cleanup(func() { signal.Stop(c) })
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
