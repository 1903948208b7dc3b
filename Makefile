# MCC Bridge: `make run` starts a relay and an agent on this machine,
# `make test` installs what the tests need and runs every test.

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
CMDS    := ./agent/cmd/bridge-agent ./relay/cmd/bridge-relay
FUZZTIME ?= 30s
# Tools the tests run, installed into the project (see deps).
TOOLS   := $(CURDIR)/.tools/bin
STEP_VERSION    := v0.30.6
STEP_CA_VERSION := v0.30.2
NFPM_VERSION    := v2.48.0
# make package: output directory, and the Authenticode key of the Windows
# .exe and .msi (PEM files; unsigned without SIGN_CERT).
DIST      ?= dist
SIGN_CERT ?=
SIGN_KEY  ?=
SIGN_PASS_FILE ?=
SIGN_TIMESTAMP_URL ?=
export PATH := $(TOOLS):$(PATH)

.DEFAULT_GOAL := help

.PHONY: help build run deps test test-short lint bench fuzz check ci clean package

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bridge-agent and bridge-relay into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(CMDS)

run: build ## start a relay (own CA), the SharePoint emulator and an enrolled agent here (state in .run/); Ctrl-C stops all
	./installer/devrun/run.sh

# The packaging tools, installed when missing by deps and package: nfpm (Go,
# into .tools/bin) for the .deb and .rpm, wixl and msitools (Debian) for the
# .msi.
define package_tools
	@mkdir -p $(TOOLS)
	@$(GO) version -m $(TOOLS)/nfpm 2>/dev/null | grep -q 'nfpm/v2[[:space:]]*$(NFPM_VERSION)[[:space:]]' || { \
		echo "installing nfpm $(NFPM_VERSION) into .tools/bin"; \
		GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION); }
	@{ command -v wixl && command -v msiinfo && command -v msibuild; } >/dev/null 2>&1 || { \
		echo "installing wixl and msitools (Debian packages) to build the Windows installer"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wixl msitools >/dev/null; }
endef

deps: ## install what the tests need when missing: tinyproxy (a real CONNECT proxy), MIT Kerberos (a real KDC), the step CLI and step-ca, chromium (headless), oauth2-mock-server (npm), the packaging tools (nfpm, wixl, msitools, osslsigncode, rpm)
	@mkdir -p $(TOOLS)
	@$(TOOLS)/step version 2>/dev/null | grep -q '$(STEP_VERSION:v%=%)' || { \
		echo "installing the step CLI $(STEP_VERSION) into .tools/bin"; \
		GOBIN=$(TOOLS) $(GO) install -ldflags "-X main.Version=$(STEP_VERSION:v%=%)" github.com/smallstep/cli/cmd/step@$(STEP_VERSION); }
	@$(TOOLS)/step-ca version 2>/dev/null | grep -q '$(STEP_CA_VERSION:v%=%)' || { \
		echo "installing step-ca $(STEP_CA_VERSION) into .tools/bin"; \
		CGO_ENABLED=0 GOBIN=$(TOOLS) $(GO) install -ldflags "-X main.Version=$(STEP_CA_VERSION:v%=%)" github.com/smallstep/certificates/cmd/step-ca@$(STEP_CA_VERSION); }
	@command -v tinyproxy >/dev/null 2>&1 || { \
		echo "installing tinyproxy (Debian package) for the proxy tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		{ $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy-bin >/dev/null 2>&1 || \
		  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy >/dev/null; }; }
	@PATH="$$PATH:/usr/sbin:/sbin"; { command -v krb5kdc && command -v kdb5_util && command -v kadmin.local; } >/dev/null 2>&1 || { \
		echo "installing MIT Kerberos (Debian packages krb5-kdc krb5-admin-server krb5-user) for the Kerberos tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends krb5-kdc krb5-admin-server krb5-user >/dev/null; }

	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing chromium (Debian package) for the dashboard's headless browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@command -v npm >/dev/null 2>&1 || { \
		echo "installing node and npm (Debian packages) for the real OAuth 2.0 server of the credential tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	@[ -d relay/credentials/testdata/oauthserver/node_modules/oauth2-mock-server ] || { \
		echo "installing oauth2-mock-server (npm ci into relay/credentials/testdata/oauthserver)"; \
		cd relay/credentials/testdata/oauthserver && npm ci --no-audit --no-fund --loglevel=error; }
	$(package_tools)
	@{ command -v osslsigncode && command -v rpm && command -v systemd-analyze; } >/dev/null 2>&1 || { \
		echo "installing osslsigncode, rpm and systemd (Debian packages) for the packaging tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends osslsigncode rpm systemd >/dev/null; }

test: deps ## run every test with the race detector
	BRIDGE_REQUIRE_EXTERNAL=1 $(GO) test -race -count=1 -timeout 20m ./...

test-short: ## run the fast tests only
	$(GO) test -race -short -count=1 ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: ## measure the tunnel, the dispatcher, credentials, webhooks and the crawl against their baselines; prints BENCH lines
	@out=$$($(GO) test ./tunnel/tunnelbench -run '^TestReport$$' -count=1 -v -timeout 20m -args -bench.report 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep '^BENCH '
	@out=$$($(GO) test ./relay/dispatch -run '^TestDispatchReport$$' -count=1 -v -timeout 10m -args -bench.report 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep '^BENCH '
	@out=$$($(GO) test ./relay/credentials -run '^TestCredentialReport$$' -count=1 -v -timeout 10m -args -bench.report 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep '^BENCH '
	@out=$$($(GO) test ./relay/webhooks -run '^TestWebhookReport$$' -count=1 -v -timeout 10m -args -bench.report 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep '^BENCH '
	@out=$$($(GO) test ./agent/crawl -run '^(TestCrawlReport|TestStreamMemoryReport)$$' -count=1 -v -timeout 20m -args -bench.report 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep '^BENCH '

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 2 || exit 1; \
		done; \
	done

check: ## cross-build for linux/amd64, linux/arm64 and windows/amd64
	@for p in linux/amd64 linux/arm64 windows/amd64; do \
		echo "== $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o /dev/null ./agent/cmd/bridge-agent || exit 1; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o /dev/null ./relay/cmd/bridge-relay || exit 1; \
	done

ci: lint test check ## what CI runs

package: ## build the agent's .deb, .rpm, .msi and the relay's .deb, .rpm into $(DIST)/; SIGN_CERT, SIGN_KEY (PEM) sign the .exe and .msi
	$(package_tools)
	@GO='$(GO)' VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' DIST='$(DIST)' NFPM='$(TOOLS)/nfpm' \
		SIGN_CERT='$(SIGN_CERT)' SIGN_KEY='$(SIGN_KEY)' SIGN_PASS_FILE='$(SIGN_PASS_FILE)' \
		SIGN_TIMESTAMP_URL='$(SIGN_TIMESTAMP_URL)' ./installer/packaging/package.sh

clean: ## remove build output and make-run state
	rm -rf $(BIN) .run
