// Package kdctest runs a real MIT Kerberos KDC (krb5kdc) on loopback for a
// test: a fresh realm database in t.TempDir(), principals added with
// kadmin.local, keytabs written with ktadd, and a krb5.conf that points
// clients at it.
//
// The MIT binaries come from the Debian packages krb5-kdc and
// krb5-admin-server (make deps installs them). Without them the test is
// skipped, or fails when BRIDGE_REQUIRE_EXTERNAL=1 (as in make test and CI).
package kdctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// masterPassword protects the throwaway realm database.
const masterPassword = "kdctest-master-Jw3"

// KDC is a running krb5kdc serving one realm on 127.0.0.1, over UDP and
// TCP on the same port. It stops in t.Cleanup.
type KDC struct {
	// Realm is the realm it serves, e.g. BRIDGE.TEST.
	Realm string
	// Addr is host:port of the KDC (UDP and TCP).
	Addr string
	// Krb5Conf is the path of a krb5.conf whose default realm is Realm and
	// whose only KDC is Addr; "localhost" and "127.0.0.1" map to Realm.
	Krb5Conf string

	dir  string
	log  string   // krb5kdc's log file
	env  []string // KRB5_CONFIG and KRB5_KDC_PROFILE for the MIT tools
	bins map[string]string
}

// Start creates realm and runs its KDC until the test ends.
func Start(t *testing.T, realm string) *KDC {
	t.Helper()
	bins := map[string]string{}
	for _, name := range []string{"krb5kdc", "kdb5_util", "kadmin.local"} {
		p, err := lookPath(name)
		if err != nil {
			const msg = "MIT Kerberos (krb5kdc, kdb5_util, kadmin.local) is not installed: run make deps"
			if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		bins[name] = p
	}
	k := &KDC{Realm: realm, dir: t.TempDir(), bins: bins}
	// Another process may take the free port between our check and the
	// KDC's bind: try a few times, each with a fresh database.
	var lastErr error
	for attempt := range 3 {
		if err := k.start(t, attempt); err != nil {
			lastErr = err
			continue
		}
		return k
	}
	t.Fatalf("krb5kdc did not start: %v", lastErr)
	return nil
}

// lookPath finds an MIT tool on PATH or in the sbin directories, which a
// non-root PATH often lacks.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// start writes the configuration for a free port, creates the database and
// starts krb5kdc, waiting until it answers on TCP.
func (k *KDC) start(t *testing.T, attempt int) error {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return err
	}
	k.Addr = net.JoinHostPort("127.0.0.1", port)
	dir := filepath.Join(k.dir, fmt.Sprint(attempt))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k.Krb5Conf = filepath.Join(dir, "krb5.conf")
	if err := WriteKrb5Conf(k.Krb5Conf, k.Realm, k.Addr); err != nil {
		return err
	}
	kdcConf := filepath.Join(dir, "kdc.conf")
	k.log = filepath.Join(dir, "kdc.log")
	conf := fmt.Sprintf(`[kdcdefaults]
	kdc_listen = 127.0.0.1:%[1]s
	kdc_tcp_listen = 127.0.0.1:%[1]s
	kdc_ports = %[1]s
	kdc_tcp_ports = %[1]s

[realms]
	%[2]s = {
		database_name = %[3]s/principal
		key_stash_file = %[3]s/stash
		acl_file = %[3]s/kadm5.acl
		admin_keytab = FILE:%[3]s/kadm5.keytab
		max_life = 10h 0m 0s
		max_renewable_life = 0
		supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
		default_principal_flags = +preauth
	}

[logging]
	kdc = FILE:%[3]s/kdc.log
	admin_server = FILE:%[3]s/kadmin.log
	default = FILE:%[3]s/krb5.log
`, port, k.Realm, dir)
	if err := os.WriteFile(kdcConf, []byte(conf), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "kadm5.acl"), nil, 0o600); err != nil {
		return err
	}
	k.env = append(os.Environ(), "KRB5_CONFIG="+k.Krb5Conf, "KRB5_KDC_PROFILE="+kdcConf)
	if out, err := k.run(k.bins["kdb5_util"], "create", "-s", "-r", k.Realm, "-P", masterPassword); err != nil {
		return fmt.Errorf("kdb5_util create: %w\n%s", err, out)
	}
	cmd := exec.Command(k.bins["krb5kdc"], "-n", "-r", k.Realm)
	cmd.Env = k.env
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start krb5kdc: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(k.log)
			return fmt.Errorf("krb5kdc exited: %v\n%s%s", err, output.String(), log)
		default:
		}
		if c, err := net.DialTimeout("tcp", k.Addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return errors.New("krb5kdc does not answer on " + k.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("krb5kdc log:\n%s", k.Log(t))
		}
	})
	return nil
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP.
func freePort() (string, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port, nil
	}
	return "", errors.New("no port free for both TCP and UDP on 127.0.0.1")
}

// WriteKrb5Conf writes to path a client krb5.conf for realm whose only KDC
// is kdcAddr (host:port); localhost and 127.0.0.1 map to realm.
func WriteKrb5Conf(path, realm, kdcAddr string) error {
	conf := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	noaddresses = true
	default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
	default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
	permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96

[realms]
	%[1]s = {
		kdc = %[2]s
		admin_server = %[2]s
	}

[domain_realm]
	localhost = %[1]s
	127.0.0.1 = %[1]s
`, realm, kdcAddr)
	return os.WriteFile(path, []byte(conf), 0o600)
}

// run runs an MIT tool with the realm's configuration.
func (k *KDC) run(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kadmin runs one kadmin.local query and fails the test on error.
// kadmin.local exits 0 even when the query fails, so its output is
// checked for MIT's "... while ..." error form too. Passwords in the query
// are not repeated in the failure.
func (k *KDC) kadmin(t *testing.T, query string) {
	t.Helper()
	out, err := k.run(k.bins["kadmin.local"], "-r", k.Realm, "-q", query)
	if err != nil || strings.Contains(out, " while ") {
		shown, _, _ := strings.Cut(query, " -pw ")
		t.Fatalf("kadmin.local -q %q: %v\n%s", shown, err, out)
	}
}

// Log returns what krb5kdc has logged so far: one line per AS_REQ and
// TGS_REQ, with ISSUE or the error.
func (k *KDC) Log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(k.log)
	if err != nil {
		t.Fatalf("krb5kdc log: %v", err)
	}
	return string(b)
}

// AddUser adds the principal name@Realm with password.
func (k *KDC) AddUser(t *testing.T, name, password string) {
	t.Helper()
	k.kadmin(t, fmt.Sprintf("addprinc -pw %s %s", password, name))
}

// AddUserWithLife adds the principal name@Realm with password and a
// maximum ticket life, so that its tickets expire during a test.
func (k *KDC) AddUserWithLife(t *testing.T, name, password string, life time.Duration) {
	t.Helper()
	k.kadmin(t, fmt.Sprintf("addprinc -maxlife %ds -pw %s %s", int(life.Seconds()), password, name))
}

// AddService adds the principal name@Realm (e.g. HTTP/localhost) with a
// random key.
func (k *KDC) AddService(t *testing.T, name string) {
	t.Helper()
	k.kadmin(t, "addprinc -randkey "+name)
}

// Keytab writes the current keys of the principals to a new keytab file in
// the test's temporary directory and returns its path. The keys stay as
// they are (ktadd -norandkey), so a user keeps its password.
func (k *KDC) Keytab(t *testing.T, principals ...string) string {
	t.Helper()
	f, err := os.CreateTemp(k.dir, "*.keytab")
	if err != nil {
		t.Fatal(err)
	}
	path := f.Name()
	f.Close()
	os.Remove(path) // ktadd creates the file; an empty one is not a keytab
	for _, p := range principals {
		k.kadmin(t, fmt.Sprintf("ktadd -norandkey -k %s %s", path, p))
	}
	return path
}
