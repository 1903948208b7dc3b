package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
	"github.com/mcc-bridge/bridge/tunnel/endpoint"
)

// cmdEmulator runs the SharePoint Server emulator with generated content,
// for trials (make run) and demonstrations: not for production.
func cmdEmulator(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sharepoint-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8088", "`address` to serve on")
	sites := fs.String("sites", "mkt", "comma-separated site collection `names` (/sites/NAME)")
	items := fs.Int("items", 200, "files or items per list")
	libraries := fs.Int("libraries", 2, "document libraries per web")
	lists := fs.Int("lists", 1, "generic lists per web")
	webs := fs.Int("webs", 1, "sub-webs per site")
	seed := fs.Uint64("seed", 1, "generator seed: the same seed gives the same content")
	user := fs.String("user", `CONTOSO\svc-bridge`, "account for NTLM; empty turns authentication off")
	passwordFile := fs.String("password-file", "", "`file` holding the account's password (required with --user)")
	keytabFile := fs.String("keytab", "", "`keytab` of the service principals (HTTP/host): require Kerberos (Negotiate) instead of NTLM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := spemu.Options{}
	log, err := endpoint.LogConfig{Level: "info", Format: "text"}.Logger(stderr)
	if err != nil {
		return err
	}
	opts.Logger = log
	switch {
	case *keytabFile != "":
		kt, err := keytab.Load(*keytabFile)
		if err != nil {
			return fmt.Errorf("sharepoint-emulator: keytab: %w", err)
		}
		opts.Auth, opts.Keytab = spemu.AuthKerberos, kt
		if err := opts.Validate(); err != nil {
			return fmt.Errorf("sharepoint-emulator: %w", err)
		}
	case *user != "":
		if *passwordFile == "" {
			return errors.New("sharepoint-emulator: --password-file is required with --user (or --user '' for no authentication)")
		}
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			return fmt.Errorf("sharepoint-emulator: %w", err)
		}
		opts.Auth = spemu.AuthNTLM
		opts.Users = map[string]string{*user: strings.TrimRight(string(b), "\r\n")}
	}
	emu := spemu.New(opts)
	spec := spemu.Spec{Seed: *seed, SiteNames: strings.Split(*sites, ","), WebsPerSite: *webs, Libraries: *libraries, Lists: *lists,
		ItemsPerList: *items, FolderDepth: 2, FolderBreadth: 2}
	spec.Sites = len(spec.SiteNames)
	if err := emu.Generate(spec); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sharepoint-emulator: %w", err)
	}
	fmt.Fprintf(stdout, "SharePoint emulator on http://%s with %d items; sites:", ln.Addr(), len(emu.Snapshot()))
	for _, s := range spec.SiteNames {
		fmt.Fprintf(stdout, " http://%s/sites/%s", ln.Addr(), s)
	}
	fmt.Fprintf(stdout, "\nchange content with the admin API under http://%s/_emu/ (see the package doc of agent/sharepoint/spemu)\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return emu.Serve(ctx, ln)
}
