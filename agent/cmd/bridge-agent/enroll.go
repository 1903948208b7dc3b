package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/tunnel"
)

func agentIdentity(c *x509.Certificate) error {
	_, err := tunnel.IdentityFromCertificate(c)
	return err
}

func cmdEnroll(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	token := fs.String("token", "", "one-time enrollment `token` (from 'bridge-relay agents token' or 'step ca token'); - reads it from stdin")
	tokenFile := fs.String("token-file", "", "read the token from this `file` instead")
	caURL := fs.String("ca-url", "", "the CA `URL` (default: the one the token names)")
	fingerprint := fs.String("fingerprint", "", "pin the CA's root by its `SHA256` fingerprint (default: the one the token carries)")
	stateDir := fs.String("state-dir", "", "`directory` for agent.crt, agent.key (mode 0600) and root.crt (required)")
	certFile := fs.String("cert", "", "certificate `file` made by 'step ca certificate' (instead of a token)")
	keyFile := fs.String("key", "", "its private key `file`")
	rootFile := fs.String("root", "", "the root certificate `file` of the CA")
	force := fs.Bool("force", false, "replace an identity already in the state directory")
	timeout := fs.Duration("timeout", time.Minute, "give up after this `duration`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: bridge-agent enroll --token TOKEN --state-dir DIR [--ca-url URL] [--fingerprint SHA256]
       bridge-agent enroll --cert FILE --key FILE --root FILE --state-dir DIR [--ca-url URL]

Makes a P-256 key that never leaves this machine, has the CA sign it, and stores
key, certificate chain and root in DIR. The tenant and agent id come from the
certificate. Point the agent at DIR with 'pki: {state_dir: DIR}' in agent.yaml.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *stateDir == "" {
		fs.Usage()
		return errors.New("enroll: --state-dir is required")
	}
	st := enroll.Store{Dir: *stateDir, Name: "agent"}
	if st.Exists() && !*force {
		cert, _, err := st.Load()
		if err == nil {
			id, _ := tunnel.IdentityFromCertificate(cert.Leaf)
			return fmt.Errorf("enroll: %s already holds %s (certificate expires %s); use --force to replace it",
				*stateDir, id, cert.Leaf.NotAfter.Format(time.RFC3339))
		}
	}
	var (
		leaf *x509.Certificate
		err  error
	)
	switch {
	case *certFile != "" || *keyFile != "" || *rootFile != "":
		if *certFile == "" || *keyFile == "" || *rootFile == "" {
			return errors.New("enroll: --cert, --key and --root go together")
		}
		leaf, err = enroll.Import(*certFile, *keyFile, *rootFile, *caURL, st, agentIdentity)
	default:
		tok := *token
		switch {
		case *tokenFile != "":
			b, rerr := os.ReadFile(*tokenFile)
			if rerr != nil {
				return fmt.Errorf("enroll: %w", rerr)
			}
			tok = string(b)
		case tok == "-":
			line, rerr := bufio.NewReader(stdin).ReadString('\n')
			if rerr != nil && line == "" {
				return fmt.Errorf("enroll: read the token from stdin: %w", rerr)
			}
			tok = line
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			fs.Usage()
			return errors.New("enroll: --token (or --token-file, or --cert/--key/--root) is required")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		leaf, err = enroll.Enroll(ctx, tok, st, enroll.Options{CAURL: *caURL, Fingerprint: *fingerprint, Check: agentIdentity})
	}
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	id, _ := tunnel.IdentityFromCertificate(leaf)
	meta, _ := st.LoadMeta()
	fmt.Fprintf(stdout, "enrolled %s (tenant %s, agent %s)\n", id, id.Tenant, id.Agent)
	fmt.Fprintf(stdout, "  certificate %s, serial %s, valid until %s\n", st.CertPath(), leaf.SerialNumber, leaf.NotAfter.Format(time.RFC3339))
	fmt.Fprintf(stdout, "  key         %s (mode 0600; never leaves this machine)\n", st.KeyPath())
	fmt.Fprintf(stdout, "  root        %s, fingerprint %s\n", st.RootPath(), meta.Fingerprint)
	if meta.CAURL != "" {
		fmt.Fprintf(stdout, "  renews at   %s, automatically while the agent runs\n", meta.CAURL)
	} else {
		fmt.Fprintln(stdout, "  no CA URL: the certificate will not renew by itself (pass --ca-url to fix)")
	}
	fmt.Fprintf(stdout, "next: set 'pki: {state_dir: %s}' in agent.yaml and run 'bridge-agent run --config agent.yaml'\n", *stateDir)
	return nil
}
