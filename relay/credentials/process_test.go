package credentials_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
)

// The environment of TestHelperManagerProcess, set by
// TestThreeProcessesRefreshOnce for each child.
const (
	envChild   = "BRIDGE_CREDENTIALS_CHILD"
	envDir     = "BRIDGE_CREDENTIALS_CHILD_DIR"
	envKey     = "BRIDGE_CREDENTIALS_CHILD_KEY"
	envToken   = "BRIDGE_CREDENTIALS_CHILD_TOKEN_URL"
	envAuth    = "BRIDGE_CREDENTIALS_CHILD_AUTH_URL"
	envClient  = "BRIDGE_CREDENTIALS_CHILD_CLIENT"
	envSecret  = "BRIDGE_CREDENTIALS_CHILD_SECRET"
	envNow     = "BRIDGE_CREDENTIALS_CHILD_NOW"
	envStartAt = "BRIDGE_CREDENTIALS_CHILD_START"
	childCalls = 200
)

// TestThreeProcessesRefreshOnce: three relay processes (this test binary
// run three times) share one credentials.db; at the token's expiry each
// makes 200 concurrent Credential calls. Exactly one token request
// reaches the provider, and every call gets the refreshed token.
func TestThreeProcessesRefreshOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	e := newEnv(t, testOptions())
	m := e.manager()
	e.connect(m, tenantA, system, e.prov)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	before := e.prov.Count("refresh_token")
	now := t0.Add(time.Hour + time.Minute) // past the 1-hour token's expiry
	start := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperManagerProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), envChild+"=1", envDir+"="+e.dir, envKey+"="+e.key.Reveal(),
				envToken+"="+e.prov.TokenURL, envAuth+"="+e.prov.AuthURL, envClient+"="+e.prov.ClientID(), envSecret+"="+e.prov.ClientSecret(),
				envNow+"="+strconv.FormatInt(now.UnixNano(), 10), envStartAt+"="+strconv.FormatInt(start.UnixNano(), 10))
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil || !strings.Contains(outs[i], fmt.Sprintf("CHILD ok %d", childCalls)) {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if got := e.prov.Count("refresh_token") - before; got != 1 {
		t.Errorf("three processes made %d refresh requests, want 1", got)
	}
}

// TestHelperManagerProcess is one relay process of
// TestThreeProcessesRefreshOnce; it runs only as its child.
func TestHelperManagerProcess(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("a child process of TestThreeProcessesRefreshOnce")
	}
	nowNS, _ := strconv.ParseInt(os.Getenv(envNow), 10, 64)
	startNS, _ := strconv.ParseInt(os.Getenv(envStartAt), 10, 64)
	now := time.Unix(0, nowNS).UTC()
	m, err := credentials.New(context.Background(), credentials.Config{
		Dir: os.Getenv(envDir), MasterKey: connectors.Secret(os.Getenv(envKey)),
		Providers: []credentials.Provider{{System: system, AuthURL: os.Getenv(envAuth), TokenURL: os.Getenv(envToken),
			ClientID: os.Getenv(envClient), ClientSecret: connectors.Secret(os.Getenv(envSecret)), Scopes: []string{"default"}, AuthStyle: oauth2.AuthStyleInHeader}},
		Now:       func() time.Time { return now },
		LeasePoll: 2 * time.Millisecond, MaxRefreshDuration: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	time.Sleep(time.Until(time.Unix(0, startNS)))
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range childCalls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := m.Credential(ctx, ownerReq(tenantA, system))
			if err != nil {
				t.Error(err)
				return
			}
			if c.Expires.After(now) {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("CHILD ok %d\n", ok.Load())
}
