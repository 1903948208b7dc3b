package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/mcc-bridge/bridge/agent/internal/kdctest"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

const cfgHead = "relays: [r:1]\npki: {state_dir: s}\n"

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKerberosConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, auth string
		want       []string
	}{
		{"no realm", "{method: kerberos, username: svc, password_env: P}", []string{"kerberos needs the realm"}},
		{"DOMAIN user", `{method: kerberos, username: 'CORP\svc', realm: CORP.EXAMPLE, password_env: P}`, []string{`not DOMAIN\user`}},
		{"no username", "{method: kerberos, realm: CORP.EXAMPLE, password_env: P}", []string{"sharepoint.auth.username is required"}},
		{"lower-case realm", "{method: kerberos, username: svc@corp.example, password_env: P}", []string{`realm "corp.example"`, "capitals"}},
		{"realms disagree", "{method: kerberos, username: svc@CORP.EXAMPLE, realm: OTHER.EXAMPLE, password_env: P}", []string{"names realm CORP.EXAMPLE but realm is OTHER.EXAMPLE"}},
		{"no secret", "{method: kerberos, username: svc@CORP.EXAMPLE}", []string{"exactly one of password_file, password_env and keytab"}},
		{"password and keytab", "{method: kerberos, username: svc@CORP.EXAMPLE, password_env: P, keytab: svc.keytab}", []string{"exactly one of password_file, password_env and keytab"}},
		{"bad spn", "{method: kerberos, username: svc@CORP.EXAMPLE, password_env: P, spn: sp.corp.example}", []string{`sharepoint.auth.spn "sp.corp.example"`, "service/host"}},
		{"spn with realm", "{method: kerberos, username: svc@CORP.EXAMPLE, password_env: P, spn: HTTP/sp@CORP.EXAMPLE}", []string{"service/host"}},
		{"kerberos keys with ntlm", "{method: ntlm, username: 'CORP\\svc', password_env: P, realm: CORP.EXAMPLE}", []string{"apply only to method kerberos"}},
		{"unknown method", "{method: kerberos5, username: u, password_env: P}", []string{"want ntlm, basic or none, or kerberos"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, dir, cfgHead+"sharepoint: {sites: [https://sp.corp.example/sites/a], auth: "+tc.auth+"}\n"))
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestKerberosConfigBuildsClient loads a kerberos configuration, builds the
// site clients from it and reads the emulator through a real KDC, with a
// password from the environment and with a keytab named relative to the
// configuration file.
func TestKerberosConfigBuildsClient(t *testing.T) {
	const password = "Agent-krb-Pw-5"
	k := kdctest.Start(t, "BRIDGE.TEST")
	k.AddUser(t, "svc-bridge", password)
	k.AddService(t, "HTTP/localhost")
	svcKeys, err := keytab.Load(k.Keytab(t, "HTTP/localhost"))
	if err != nil {
		t.Fatal(err)
	}
	emu := spemu.New(spemu.Options{Auth: spemu.AuthKerberos, Keytab: svcKeys})
	if err := emu.Generate(spemu.Spec{Sites: 1, SiteNames: []string{"mkt"}, ItemsPerList: 2, PlainNames: true}); err != nil {
		t.Fatal(err)
	}
	u, err := emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	site := strings.Replace(u, "127.0.0.1", "localhost", 1) + "/sites/mkt"

	dir := t.TempDir()
	userKeys, err := os.ReadFile(k.Keytab(t, "svc-bridge"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "svc.keytab"), userKeys, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{
		"password_env": "password_env: SP_PASSWORD",
		"keytab":       "keytab: svc.keytab",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadConfig(writeConfig(t, dir, cfgHead+fmt.Sprintf(
				"sharepoint:\n  sites: [%s]\n  auth: {method: kerberos, username: svc-bridge@BRIDGE.TEST, krb5_conf: %s, %s}\n",
				site, k.Krb5Conf, secret)))
			if err != nil {
				t.Fatal(err)
			}
			getenv := func(k string) string {
				if k == "SP_PASSWORD" {
					return password
				}
				return ""
			}
			clients, err := cfg.SharePoint.clients("test", getenv, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range clients {
				t.Cleanup(func() { c.Close() })
				if _, err := c.Webs(context.Background()); err != nil {
					t.Errorf("%s: %v", c.SiteURL(), err)
				}
			}
		})
	}
	// A wrong password is refused by the KDC, and the error hides it.
	cfg, err := LoadConfig(writeConfig(t, dir, cfgHead+fmt.Sprintf(
		"sharepoint:\n  sites: [%s]\n  auth: {method: kerberos, username: svc-bridge, realm: BRIDGE.TEST, krb5_conf: %s, password_env: SP_PASSWORD}\n",
		site, k.Krb5Conf)))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := cfg.SharePoint.clients("test", func(string) string { return "Zq9-wrong-pw" }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clients[0].Close() })
	_, err = clients[0].Webs(context.Background())
	if !errors.Is(err, sharepoint.ErrKerberosCredentials) || strings.Contains(err.Error(), "Zq9-wrong-pw") {
		t.Errorf("wrong password: got %v, want ErrKerberosCredentials without the password", err)
	}
}

// TestODataConfig checks sharepoint.odata strictly, and the clients built
// from the configuration ask the emulator for that format (verbose when
// unset).
func TestODataConfig(t *testing.T) {
	emu := spemu.New(spemu.Options{})
	if err := emu.Generate(spemu.Spec{Sites: 1, SiteNames: []string{"mkt"}, ItemsPerList: 2, PlainNames: true}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts[r.Header.Get("Accept")]++
		mu.Unlock()
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, line, want, err string
	}{
		{"unset", "", "application/json;odata=verbose", ""},
		{"verbose", "odata: verbose\n", "application/json;odata=verbose", ""},
		{"minimalmetadata", "odata: minimalmetadata\n", "application/json;odata=minimalmetadata", ""},
		{"nometadata", "odata: nometadata\n", "application/json;odata=nometadata", ""},
		{"capitals", "odata: Verbose\n", "", `sharepoint.odata "Verbose": want verbose, minimalmetadata or nometadata`},
		{"full metadata", "odata: fullmetadata\n", "", `sharepoint.odata "fullmetadata"`},
		{"header value", "odata: odata=nometadata\n", "", `sharepoint.odata "odata=nometadata"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig(writeConfig(t, dir, cfgHead+"sharepoint:\n  sites: ["+srv.URL+"/sites/mkt]\n  auth: {method: none}\n  "+tc.line))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			clients, err := cfg.SharePoint.clients("test", func(string) string { return "" }, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { clients[0].Close() })
			mu.Lock()
			clear(accepts)
			mu.Unlock()
			webs, err := clients[0].Webs(context.Background())
			if err != nil || len(webs) != 1 || webs[0].Title == "" {
				t.Fatalf("Webs: got %+v, %v", webs, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if accepts[tc.want] == 0 || len(accepts) != 1 {
				t.Errorf("got Accept %v, want only %s", accepts, tc.want)
			}
		})
	}
}
