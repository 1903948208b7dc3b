package sharepoint_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/mcc-bridge/bridge/agent/internal/kdctest"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

const (
	krbRealm    = "BRIDGE.TEST"
	krbPassword = "Krb-svc-Pw-8Lm"
)

// krbEnv is a real MIT KDC and an emulator that accepts Kerberos tickets
// for HTTP/localhost only. The emulator listens on 127.0.0.1 and the
// clients connect as http://localhost:port, so the default SPN is
// HTTP/localhost.
type krbEnv struct {
	kdc     *kdctest.KDC
	emu     *spemu.Server
	site    string // http://localhost:port/sites/mkt
	keytab  string // svc-bridge's keys
	logs    *syncBuffer
	emuLogs *syncBuffer
}

func newKrbEnv(t *testing.T) *krbEnv {
	t.Helper()
	k := kdctest.Start(t, krbRealm)
	k.AddUser(t, "svc-bridge", krbPassword)
	k.AddService(t, "HTTP/localhost")
	k.AddService(t, "HTTP/other.test")
	kt, err := keytab.Load(k.Keytab(t, "HTTP/localhost"))
	if err != nil {
		t.Fatal(err)
	}
	e := &krbEnv{kdc: k, keytab: k.Keytab(t, "svc-bridge"), logs: &syncBuffer{t: t}, emuLogs: &syncBuffer{t: t}}
	e.emu = spemu.New(spemu.Options{Auth: spemu.AuthKerberos, Keytab: kt, Logger: slog.New(slog.NewTextHandler(e.emuLogs, nil))})
	if err := e.emu.Generate(spemu.Spec{Sites: 1, SiteNames: []string{"mkt"}, ItemsPerList: 3, PlainNames: true}); err != nil {
		t.Fatal(err)
	}
	u, err := e.emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.emu.Close() })
	e.site = strings.Replace(u, "127.0.0.1", "localhost", 1) + "/sites/mkt"
	return e
}

// client returns a Kerberos client of the site, closed when the test ends.
func (e *krbEnv) client(t *testing.T, auth sharepoint.Auth) (*sharepoint.Client, error) {
	t.Helper()
	auth.Method = "kerberos"
	if auth.Kerberos.Krb5Conf == "" {
		auth.Kerberos.Krb5Conf = e.kdc.Krb5Conf
	}
	c, err := sharepoint.New(sharepoint.Config{SiteURL: e.site, Auth: auth, Version: "test", RequestsPerSecond: 1000,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxRetries: 2,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// syncBuffer keeps what is logged, for searching, and shows it in t.Log.
type syncBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Log(strings.TrimRight(string(p), "\n"))
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// crawlStart makes the requests a crawl starts with: the site, its webs and
// their lists (a POST with a form digest comes with the change log).
func crawlStart(ctx context.Context, c *sharepoint.Client) error {
	site, err := c.Site(ctx)
	if err != nil {
		return err
	}
	webs, err := c.Webs(ctx)
	if err != nil {
		return err
	}
	for _, w := range webs {
		if _, err := c.Lists(ctx, w); err != nil {
			return err
		}
	}
	return c.Changes(ctx, site.CurrentChangeToken, func([]sharepoint.Change) error { return nil })
}

func TestKerberos(t *testing.T) {
	e := newKrbEnv(t)
	closedKDC := filepath.Join(t.TempDir(), "krb5.conf")
	if err := kdctest.WriteKrb5Conf(closedKDC, krbRealm, closedAddr(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		auth      sharepoint.Auth
		wantErr   error  // errors.Is; nil with wantText "" means success
		wantText  string // in the error
		wantFails int64  // 401s the emulator counts
	}{
		{name: "password", auth: sharepoint.Auth{Username: "svc-bridge", Password: krbPassword, Kerberos: sharepoint.Kerberos{Realm: krbRealm}}},
		{name: "user@REALM", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Password: krbPassword}},
		{name: "keytab", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Kerberos: sharepoint.Kerberos{Keytab: e.keytab}}},
		{name: "explicit SPN", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Password: krbPassword, Kerberos: sharepoint.Kerberos{SPN: "HTTP/localhost"}}},
		{name: "wrong password", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Password: "Wrong-" + krbPassword},
			wantErr: sharepoint.ErrKerberosCredentials, wantText: "svc-bridge@BRIDGE.TEST"},
		{name: "unknown user", auth: sharepoint.Auth{Username: "nobody@" + krbRealm, Password: krbPassword},
			wantErr: sharepoint.ErrKerberosUnknownPrincipal, wantText: "nobody@BRIDGE.TEST"},
		{name: "SPN the KDC does not know", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Password: krbPassword, Kerberos: sharepoint.Kerberos{SPN: "HTTP/nowhere.test"}},
			wantErr: sharepoint.ErrKerberosUnknownService, wantText: "HTTP/nowhere.test"},
		{name: "ticket for another service", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Password: krbPassword, Kerberos: sharepoint.Kerberos{SPN: "HTTP/other.test"}},
			wantText: "SharePoint refused the Kerberos ticket for HTTP/other.test", wantFails: 2},
		{name: "KDC unreachable", auth: sharepoint.Auth{Username: "svc-bridge@" + krbRealm, Password: krbPassword, Kerberos: sharepoint.Kerberos{Krb5Conf: closedKDC}},
			wantErr: sharepoint.ErrKDCUnreachable, wantText: "krb5.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.emu.Stats().AuthFailures
			c, err := e.client(t, tc.auth)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			ctx := context.Background()
			err = crawlStart(ctx, c)
			switch {
			case tc.wantErr == nil && tc.wantText == "":
				if err != nil {
					t.Fatalf("crawl requests: %v", err)
				}
			case err == nil:
				t.Fatalf("crawl requests succeeded, want an error")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			case !strings.Contains(err.Error(), tc.wantText):
				t.Errorf("got error %q, want it to mention %q", err, tc.wantText)
			}
			if err != nil {
				t.Logf("error: %v", err)
			}
			if got := e.emu.Stats().AuthFailures - before; got != tc.wantFails {
				t.Errorf("emulator counted %d authentication failures, want %d", got, tc.wantFails)
			}
			if errors.Is(err, sharepoint.ErrKerberosCredentials) {
				// The refused password is not tried again.
				issued := strings.Count(e.kdc.Log(t), "PREAUTH_FAILED")
				if _, err2 := c.Site(ctx); !errors.Is(err2, sharepoint.ErrKerberosCredentials) {
					t.Errorf("second request: got %v, want the same refusal", err2)
				}
				if n := strings.Count(e.kdc.Log(t), "PREAUTH_FAILED"); n != issued {
					t.Errorf("the KDC saw %d more failed logins after the refusal, want none", n-issued)
				}
			}
		})
	}
	for _, out := range []string{e.logs.String(), e.emuLogs.String()} {
		if strings.Contains(out, krbPassword) {
			t.Errorf("a log shows the password")
		}
	}
}

// TestKerberosErrorsHideThePassword checks every message of a failed login
// for the password, whatever the failure.
func TestKerberosErrorsHideThePassword(t *testing.T) {
	e := newKrbEnv(t)
	const secret = "Zq9-krb-secret"
	for _, user := range []string{"svc-bridge@" + krbRealm, "nobody@" + krbRealm} {
		c, err := e.client(t, sharepoint.Auth{Username: user, Password: secret})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Site(context.Background())
		if err == nil {
			t.Fatalf("%s: logged in with the wrong password", user)
		}
		if got := fmt.Sprintf("%v %+v %#v", err, err, err); strings.Contains(got, secret) {
			t.Errorf("%s: the error shows the password: %s", user, got)
		}
	}
	if strings.Contains(e.logs.String(), secret) || strings.Contains(e.emuLogs.String(), secret) {
		t.Error("a log shows the password")
	}
}

// TestKerberosConfig checks what New refuses before any KDC is asked.
func TestKerberosConfig(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "krb5.conf")
	if err := kdctest.WriteKrb5Conf(conf, krbRealm, "127.0.0.1:88"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		auth sharepoint.Auth
		want string
	}{
		{"no realm", sharepoint.Auth{Username: "svc", Password: "p"}, "no realm for svc"},
		{"DOMAIN\\user", sharepoint.Auth{Username: `CORP\svc`, Password: "p", Kerberos: sharepoint.Kerberos{Realm: krbRealm}}, `not DOMAIN\user`},
		{"realms disagree", sharepoint.Auth{Username: "svc@OTHER.TEST", Password: "p", Kerberos: sharepoint.Kerberos{Realm: krbRealm}}, "names realm OTHER.TEST"},
		{"no password or keytab", sharepoint.Auth{Username: "svc@" + krbRealm}, "neither a password nor a keytab"},
		{"password and keytab", sharepoint.Auth{Username: "svc@" + krbRealm, Password: "p", Kerberos: sharepoint.Kerberos{Keytab: conf}}, "both a password and a keytab"},
		{"bad SPN", sharepoint.Auth{Username: "svc@" + krbRealm, Password: "p", Kerberos: sharepoint.Kerberos{SPN: "localhost"}}, "want service/host"},
		{"missing krb5.conf", sharepoint.Auth{Username: "svc@" + krbRealm, Password: "p", Kerberos: sharepoint.Kerberos{Krb5Conf: conf + ".missing"}}, "krb5.conf.missing"},
		{"realm without KDC", sharepoint.Auth{Username: "svc@OTHER.TEST", Password: "p"}, "names no KDC for realm OTHER.TEST"},
		{"not a keytab", sharepoint.Auth{Username: "svc@" + krbRealm, Kerberos: sharepoint.Kerberos{Keytab: conf}}, "keytab " + conf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.auth.Method = "kerberos"
			if tc.auth.Kerberos.Krb5Conf == "" {
				tc.auth.Kerberos.Krb5Conf = conf
			}
			c, err := sharepoint.New(sharepoint.Config{SiteURL: "http://localhost:1/sites/a", Auth: tc.auth})
			if err == nil {
				c.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestKerberosLogsInAgain lets the account's tickets expire between two
// requests: the second logs in again by itself.
func TestKerberosLogsInAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a ticket to expire")
	}
	e := newKrbEnv(t)
	const life = 6 * time.Second
	e.kdc.AddUserWithLife(t, "svc-short", krbPassword, life)
	c, err := e.client(t, sharepoint.Auth{Username: "svc-short@" + krbRealm, Password: krbPassword})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Site(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(life + time.Second)
	if _, err := c.Site(ctx); err != nil {
		t.Fatalf("after the tickets expired: %v", err)
	}
	log := e.kdc.Log(t)
	logins := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "AS_REQ") && strings.Contains(line, "ISSUE") && strings.Contains(line, "svc-short@") {
			logins++
		}
	}
	if logins < 2 {
		t.Errorf("got %d logins of svc-short, want a second one after the first TGT expired; KDC log:\n%s", logins, log)
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
