package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/tunnel"
)

// identity is the agent's certificate, loaded as agent.New loads it.
type identity struct {
	tls  *tls.Config // the agent certificate and the roots that verify relays, as agent.New builds it
	leaf *x509.Certificate
	id   tunnel.Identity
}

// certificate runs the certificate step and sets r.id unless it fails.
func (r *runner) certificate(ctx context.Context) {
	r.step(ctx, "certificate", func(context.Context) Result {
		res, id := r.checkCertificate()
		r.id = id
		return res
	})
}

func (r *runner) checkCertificate() (Result, *identity) {
	pki := r.cfg.PKI.StateDir != ""
	var (
		cert     tls.Certificate
		roots    *x509.CertPool
		rootName string // where the root comes from, for messages
	)
	if pki {
		st := enroll.Store{Dir: r.cfg.PKI.StateDir, Name: "agent"}
		rootName = st.RootPath()
		c, root, err := st.Load()
		if err != nil {
			hint := "re-enroll: get a new token from the relay operator ('bridge-relay agents token') and run " + r.enrollCommand()
			if errors.Is(err, enroll.ErrNotEnrolled) {
				hint = "enroll this agent: get a token from the relay operator ('bridge-relay agents token') and run " + r.enrollCommand()
			}
			return Result{Status: Fail, Detail: "the agent identity does not load: " + err.Error(), Hint: hint}, nil
		}
		cert = *c
		roots = x509.NewCertPool()
		roots.AddCert(root)
	} else {
		rootName = "tls.ca (" + r.cfg.TLS.CA + ")"
		c, pool, err := r.cfg.TLS.Load()
		if err != nil {
			return Result{Status: Fail, Detail: "the agent certificate does not load: " + err.Error(),
				Hint: "check tls.cert, tls.key and tls.ca in agent.yaml: the files must exist, be readable by the account the agent runs as, and the key must match the certificate"}, nil
		}
		cert, roots = c, pool
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return Result{Status: Fail, Detail: "the agent certificate does not parse: " + err.Error(), Hint: r.renewHint(pki)}, nil
		}
	}
	id, err := tunnel.IdentityFromCertificate(leaf)
	if err != nil {
		return Result{Status: Fail, Detail: "not an agent certificate: " + err.Error(), Hint: r.renewHint(pki)}, nil
	}
	now := r.opts.Now()
	subject := fmt.Sprintf("%s (tenant %s, agent %s), serial %s", id, id.Tenant, id.Agent, leaf.SerialNumber.Text(16))
	switch {
	case now.After(leaf.NotAfter):
		return Result{Status: Fail,
			Detail: fmt.Sprintf("%s expired %s ago, at %s", subject, roundAge(now.Sub(leaf.NotAfter)), stamp(leaf.NotAfter)),
			Hint:   r.renewHint(pki) + "; if this machine's clock is wrong, correct it first"}, nil
	case now.Before(leaf.NotBefore):
		return Result{Status: Fail,
			Detail: fmt.Sprintf("%s is not valid before %s, %s from now", subject, stamp(leaf.NotBefore), roundAge(leaf.NotBefore.Sub(now))),
			Hint:   "this machine's clock is probably behind: synchronise it (Windows: w32tm /resync; Linux: timedatectl, chrony or ntpd), then run the doctor again"}, nil
	}
	ident := &identity{
		tls:  &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: r.cfg.ServerName},
		leaf: leaf,
		id:   id,
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, verr := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if verr != nil {
		detail := fmt.Sprintf("%s, issued by %q, does not chain to the root in %s: %v", subject, leaf.Issuer.CommonName, rootName, verr)
		if pki {
			return Result{Status: Fail, Detail: detail,
				Hint: "the state directory mixes identities: " + r.renewHint(true)}, nil
		}
		// With fixed files the root verifies relays; agents may come from
		// another CA that the relay trusts. Go on and let the relay decide.
		return Result{Status: Warn, Detail: detail,
			Hint: "fine only if the relay trusts another CA for agent certificates; otherwise tls.cert and tls.ca come from different CAs: get the agent certificate from the relay's CA"}, ident
	}
	left, life := leaf.NotAfter.Sub(now), leaf.NotAfter.Sub(leaf.NotBefore)
	detail := fmt.Sprintf("%s, issued by %q, chains to the root in %s; expires %s (in %s)",
		subject, leaf.Issuer.CommonName, rootName, stamp(leaf.NotAfter), roundAge(left))
	if left < life/3 {
		hint := "replace tls.cert and tls.key with a new certificate before it expires (or enroll with 'bridge-agent enroll' and use pki.state_dir, which renews itself)"
		if pki {
			hint = "renewal is overdue (it runs at two thirds of the lifetime): check that the agent service is running and can reach its CA, and see 'bridge-agent status' for the last renewal error; if it cannot renew, " + r.renewHint(true)
		}
		return Result{Status: Warn, Detail: detail + ": less than a third of its lifetime left", Hint: hint}, ident
	}
	return Result{Status: Pass, Detail: detail}, ident
}

// enrollCommand is the command line that enrolls this agent again.
func (r *runner) enrollCommand() string {
	return "'bridge-agent enroll --token TOKEN --state-dir " + r.cfg.PKI.StateDir + " --force'"
}

// renewHint says how to get a new agent certificate.
func (r *runner) renewHint(pki bool) string {
	if pki {
		return "re-enroll: get a new token from the relay operator ('bridge-relay agents token') and run " + r.enrollCommand()
	}
	return "get a new agent certificate from the relay's CA and point tls.cert and tls.key at it (or enroll with 'bridge-agent enroll' and use pki.state_dir, which renews itself)"
}

// stamp formats a certificate time.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// roundAge rounds a duration for people: to the minute from an hour, to the
// second below.
func roundAge(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
