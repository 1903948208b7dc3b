package kdctest

import (
	"strings"
	"testing"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// TestKDC logs in to the KDC with a password and with a keytab exported
// from it, and gets a service ticket each time.
func TestKDC(t *testing.T) {
	k := Start(t, "BRIDGE.TEST")
	k.AddUser(t, "alice", "Alice-pw-7")
	k.AddService(t, "HTTP/localhost")
	ktPath := k.Keytab(t, "alice")
	cfg, err := config.Load(k.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	kt, err := keytab.Load(ktPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, cl := range map[string]*client.Client{
		"password": client.NewWithPassword("alice", k.Realm, "Alice-pw-7", cfg, client.DisablePAFXFAST(true)),
		"keytab":   client.NewWithKeytab("alice", k.Realm, kt, cfg, client.DisablePAFXFAST(true)),
	} {
		if err := cl.Login(); err != nil {
			t.Fatalf("%s: login: %v", name, err)
		}
		if _, _, err := cl.GetServiceTicket("HTTP/localhost"); err != nil {
			t.Fatalf("%s: service ticket: %v", name, err)
		}
		cl.Destroy()
	}
	if log := k.Log(t); !strings.Contains(log, "ISSUE") || !strings.Contains(log, "HTTP/localhost@BRIDGE.TEST") {
		t.Errorf("the KDC log shows no ticket issued for HTTP/localhost:\n%s", log)
	}
}
