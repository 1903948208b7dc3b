package spemu

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/mcc-bridge/bridge/agent/internal/kdctest"
)

// TestKerberosNegotiate sends Negotiate headers made with tickets from a
// real MIT KDC: only fresh tickets for the emulator's own principal pass.
func TestKerberosNegotiate(t *testing.T) {
	k := kdctest.Start(t, "BRIDGE.TEST")
	k.AddUser(t, "svc-bridge", "Krb-emu-Pw-2")
	k.AddService(t, "HTTP/localhost")
	k.AddService(t, "HTTP/other.test")
	kt, err := keytab.Load(k.Keytab(t, "HTTP/localhost"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := config.Load(k.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewWithPassword("svc-bridge", k.Realm, "Krb-emu-Pw-2", conf, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Destroy)
	// token makes a Negotiate header for spn, SPNEGO-wrapped or bare.
	token := func(spn string, wrap bool) string {
		t.Helper()
		tkt, key, err := cl.GetServiceTicket(spn)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		if wrap {
			init, err := spnego.NewNegTokenInitKRB5(cl, tkt, key)
			if err != nil {
				t.Fatal(err)
			}
			st := spnego.SPNEGOToken{Init: true, NegTokenInit: init}
			b, err = st.Marshal()
			if err != nil {
				t.Fatal(err)
			}
		} else {
			mt, err := spnego.NewKRB5TokenAPREQ(cl, tkt, key, []int{gssapi.ContextFlagInteg, gssapi.ContextFlagConf}, []int{})
			if err != nil {
				t.Fatal(err)
			}
			if b, err = mt.Marshal(); err != nil {
				t.Fatal(err)
			}
		}
		return "Negotiate " + base64.StdEncoding.EncodeToString(b)
	}
	ntlmNeg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, Options{Auth: AuthKerberos, Keytab: kt})
	e.generate(Spec{Seed: 3, ItemsPerList: 2, PlainNames: true})
	replayed := token("HTTP/localhost", true)
	for _, tc := range []struct {
		name   string
		authz  string
		status int
		failed bool // counted as an authentication failure
	}{
		{"no header", "", 401, false},
		{"SPNEGO token", replayed, 200, false},
		{"bare Kerberos token", token("HTTP/localhost", false), 200, false},
		{"replayed token", replayed, 401, true},
		{"ticket for another service", token("HTTP/other.test", true), 401, true},
		{"NTLM in Negotiate", "Negotiate " + base64.StdEncoding.EncodeToString(ntlmNeg), 401, true},
		{"Basic", "Basic c3ZjLWJyaWRnZTpLcmItZW11LVB3LTI=", 401, true},
		{"not base64", "Negotiate ***", 401, true},
		{"empty token", "Negotiate ", 401, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.s.Stats().AuthFailures
			hdr := map[string]string{}
			if tc.authz != "" {
				hdr["Authorization"] = tc.authz
			}
			resp, b := e.do("GET", "/sites/site0/_api/web/currentuser", nometa, nil, hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("got HTTP %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			offered := resp.Header.Values("WWW-Authenticate")
			switch {
			case tc.status == 401 && !slices.Equal(offered, []string{"Negotiate"}):
				t.Errorf("401 offers %q, want just Negotiate, as IIS with Kerberos", offered)
			case tc.status == 200 && !bytes.Contains(b, []byte(`contoso\\svc-bridge`)):
				t.Errorf("currentuser is %s, want CONTOSO\\svc-bridge", b)
			}
			if got := e.s.Stats().AuthFailures - before; got != map[bool]int64{false: 0, true: 1}[tc.failed] {
				t.Errorf("authentication failures went up by %d", got)
			}
		})
	}
}

func TestKerberosOptions(t *testing.T) {
	if err := (Options{Auth: AuthKerberos}).Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("AuthKerberos without a keytab: got %v, want ErrInvalidOptions", err)
	}
	if err := (Options{Auth: AuthKerberos, Keytab: keytab.New()}).Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("AuthKerberos with an empty keytab: got %v, want ErrInvalidOptions", err)
	}
	if got := AuthKerberos.String(); got != "kerberos" {
		t.Errorf("AuthKerberos.String() = %q", got)
	}
	// Without a keytab (New does not validate), every request is refused.
	e := newEnv(t, Options{Auth: AuthKerberos})
	e.generate(Spec{Seed: 3, ItemsPerList: 1, PlainNames: true})
	if resp, _ := e.do("GET", "/sites/site0/_api/web", nometa, nil, map[string]string{"Authorization": "Negotiate YQ=="}); resp.StatusCode != 401 {
		t.Errorf("no keytab: HTTP %d, want 401", resp.StatusCode)
	}
}

// FuzzVerifyNegotiate feeds arbitrary Negotiate tokens to the Kerberos
// check: it must refuse them without panicking (a token cannot be forged
// without the service key).
func FuzzVerifyNegotiate(f *testing.F) {
	kt := keytab.New()
	if err := kt.AddEntry("HTTP/localhost", "BRIDGE.TEST", "service-pw", time.Unix(0, 0), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		f.Fatal(err)
	}
	s := New(Options{Auth: AuthKerberos, Keytab: kt})
	ntlmNeg, _ := ntlmssp.NewNegotiateMessage("", "")
	wrapped := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{
		MechTypes: []asn1.ObjectIdentifier{gssapi.OIDKRB5.OID()}, MechTokenBytes: []byte{0x60, 0x03, 0x06, 0x01, 0x00}}}
	wb, err := wrapped.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{nil, ntlmNeg, wb, {0x60, 0x80}, {0xa1, 0x00}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		if acct, err := s.verifyNegotiate("Negotiate", base64.StdEncoding.EncodeToString(tok), "127.0.0.1:1"); err == nil {
			t.Fatalf("token accepted as %s", acct)
		}
	})
}
