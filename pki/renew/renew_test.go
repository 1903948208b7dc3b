package renew_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/pkitest"
	"github.com/mcc-bridge/bridge/pki/renew"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/tunnel/backoff"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

func enrolled(t *testing.T, srv *stepca.Server, agent string) enroll.Store {
	t.Helper()
	tok, err := pkitest.Minter(t, srv, stepca.AgentProvisioner).AgentToken("acme", agent, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	if _, err := enroll.Enroll(context.Background(), tok, st, enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	return st
}

func newRenewer(t *testing.T, st enroll.Store) (*renew.Renewer, *prometheus.Registry) {
	t.Helper()
	log, _ := tunneltest.Logger(t)
	reg := prometheus.NewRegistry()
	m, err := renew.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := renew.New(renew.Config{Store: st, Logger: log, Metrics: m, Backoff: backoffFast})
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

var backoffFast = backoff.Policy{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond}

func TestRenewsAtTwoThirds(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{AgentDuration: 9 * time.Second, MinDuration: time.Second, Backdate: time.Second})
	st := enrolled(t, srv, "agent-01")
	r, reg := newRenewer(t, st)
	first := r.Certificate()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.After(20 * time.Second)
	for r.Certificate() == first {
		select {
		case <-deadline:
			t.Fatalf("no renewal within 20s; status %+v", r.Status())
		case <-time.After(100 * time.Millisecond):
		}
	}
	renewedAt := time.Now()
	life := first.Leaf.NotAfter.Sub(first.Leaf.NotBefore)
	if early := first.Leaf.NotAfter.Sub(renewedAt); early < life/4 || early > life/2 {
		t.Errorf("renewed %v before expiry of a %v certificate, want about a third", early, life)
	}
	next := r.Certificate()
	if next.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 || !next.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Errorf("renewed certificate: serial %v notAfter %v; old %v %v", next.Leaf.SerialNumber, next.Leaf.NotAfter, first.Leaf.SerialNumber, first.Leaf.NotAfter)
	}
	got, _ := r.GetClientCertificate(nil)
	if got != next {
		t.Errorf("GetClientCertificate does not return the renewed certificate")
	}
	onDisk, _, err := st.Load()
	if err != nil || !onDisk.Leaf.Equal(next.Leaf) {
		t.Errorf("the renewed certificate was not written: %v", err)
	}
	if s := r.Status(); s.State != renew.StateValid || s.Serial != next.Leaf.SerialNumber.String() || s.LastRenewal.IsZero() {
		t.Errorf("status %+v", s)
	}
	if n := metric(t, reg, "bridge_pki_renewals_total", map[string]string{"result": "ok"}); n < 1 {
		t.Errorf("renewals_total = %v", n)
	}
}

func TestExpiredRenewsWithX5CToken(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{AgentDuration: 2 * time.Second, MinDuration: time.Second, Backdate: 2 * time.Minute})
	st := enrolled(t, srv, "agent-02")
	r, _ := newRenewer(t, st)
	time.Sleep(time.Until(r.Certificate().Leaf.NotAfter) + 1100*time.Millisecond)
	if err := r.RenewNow(context.Background()); err != nil {
		t.Fatalf("renew an expired certificate: %v", err)
	}
	if !time.Now().Before(r.Certificate().Leaf.NotAfter) {
		t.Errorf("still expired: %v", r.Certificate().Leaf.NotAfter)
	}
}

func TestExpiredNeedsReenrollment(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{AgentDuration: 2 * time.Second, MinDuration: time.Second, Backdate: 2 * time.Minute, DisableRenewalAfterExpiry: true})
	st := enrolled(t, srv, "agent-03")
	r, reg := newRenewer(t, st)
	time.Sleep(time.Until(r.Certificate().Leaf.NotAfter) + 1100*time.Millisecond)
	err := r.RenewNow(context.Background())
	if !errors.Is(err, renew.ErrReenroll) || !strings.Contains(err.Error(), "bridge-agent enroll") {
		t.Fatalf("err = %v, want re-enrollment needed", err)
	}
	if s := r.Status(); s.State != renew.StateReenroll || !r.NeedsReenrollment() {
		t.Errorf("status %+v", s)
	}
	if v := metric(t, reg, "bridge_pki_reenrollment_needed", nil); v != 1 {
		t.Errorf("reenrollment_needed = %v", v)
	}
}

func TestRevokedIsNotRenewed(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{})
	st := enrolled(t, srv, "agent-04")
	r, _ := newRenewer(t, st)
	conn, err := caclient.Dial(context.Background(), srv.URL(), caclient.Pin{Root: srv.CA().Root()})
	if err != nil {
		t.Fatal(err)
	}
	m := pkitest.Minter(t, srv, stepca.AgentProvisioner)
	if err := m.Revoke(context.Background(), conn.Client, r.Certificate().Leaf.SerialNumber.String(), "test"); err != nil {
		t.Fatal(err)
	}
	// Revoking twice is fine.
	if err := m.Revoke(context.Background(), conn.Client, r.Certificate().Leaf.SerialNumber.String(), "test"); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	err = r.RenewNow(context.Background())
	if !errors.Is(err, renew.ErrReenroll) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("renewing a revoked certificate: %v, want re-enrollment needed", err)
	}
	if s := r.Status(); s.State != renew.StateReenroll || s.LastError == "" {
		t.Errorf("status %+v", s)
	}
}

func TestCAUnreachableRetries(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{})
	st := enrolled(t, srv, "agent-05")
	url := srv.URL()
	srv.Close(context.Background())
	r, _ := newRenewer(t, st)
	err := r.RenewNow(context.Background())
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("err = %v, want it to name %s", err, url)
	}
	if s := r.Status(); s.State != renew.StateRetrying {
		t.Errorf("status %+v", s)
	}
}
