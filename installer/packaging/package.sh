#!/bin/sh
# package.sh: what `make package` runs. It builds into $DIST:
#
#   mcc-bridge-agent_<version>-1_amd64.deb, mcc-bridge-agent-<version>-1.x86_64.rpm
#       the agent for Linux (nfpm, installer/packaging/nfpm.yaml)
#   bridge-agent-<version>-windows-amd64.exe, mcc-bridge-agent-<version>-x64.msi
#       the agent for Windows (wixl, installer/packaging/windows/bridge-agent.wxs),
#       Authenticode-signed when SIGN_CERT is set: the .exe before it goes
#       into the .msi, then the .msi
#   mcc-bridge-relay_<version>-1_amd64.deb, mcc-bridge-relay-<version>-1.x86_64.rpm
#       the relay for a VPC host (installer/packaging/nfpm-relay.yaml)
#   SHA256SUMS
#
# Environment (the Makefile passes its variables):
#   VERSION         git describe output; package versions are made from it
#                   by version.sh (PKG_VERSION and MSI_VERSION override them)
#   GO, LDFLAGS     the go command and the linker flags
#   DIST            output directory (default dist)
#   NFPM            the nfpm binary (default nfpm)
#   SIGN_CERT       PEM certificate (chain) with the code-signing key usage
#   SIGN_KEY        its PEM private key
#   SIGN_PASS_FILE  a file holding the key's password, if it has one
#   SIGN_TIMESTAMP_URL
#                   an RFC 3161 time-stamping server, so that the signature
#                   outlives the certificate (optional; needs the network)
set -eu

cd "$(dirname "$0")/../.."
repo=$(pwd)

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
LDFLAGS=${LDFLAGS:--s -w -X main.version=$VERSION}
DIST=${DIST:-dist}
NFPM=${NFPM:-nfpm}
SIGN_CERT=${SIGN_CERT:-}
SIGN_KEY=${SIGN_KEY:-}
SIGN_PASS_FILE=${SIGN_PASS_FILE:-}
SIGN_TIMESTAMP_URL=${SIGN_TIMESTAMP_URL:-}

fail() {
	echo "package: $*" >&2
	exit 1
}
need() {
	command -v "$1" >/dev/null 2>&1 || fail "$1 is missing ($2); 'make deps' installs it"
}

need "$NFPM" "nfpm builds the .deb and .rpm"
need wixl "Debian package wixl builds the .msi"
need msibuild "Debian package msitools edits the .msi"
if [ -n "$SIGN_CERT" ] || [ -n "$SIGN_KEY" ]; then
	if [ -z "$SIGN_CERT" ] || [ -z "$SIGN_KEY" ]; then
		fail "set both SIGN_CERT and SIGN_KEY (PEM files), or neither"
	fi
	for f in "$SIGN_CERT" "$SIGN_KEY" ${SIGN_PASS_FILE:+"$SIGN_PASS_FILE"}; do
		[ -r "$f" ] || fail "cannot read $f"
	done
	need osslsigncode "Debian package osslsigncode signs the .exe and .msi"
fi

pkg_version=${PKG_VERSION:-$(installer/packaging/version.sh "$VERSION")}
msi_version=${MSI_VERSION:-$(installer/packaging/version.sh --msi "$VERSION")}
echo "package: version $VERSION: packages $pkg_version, MSI $msi_version"

mkdir -p "$DIST"
dist=$(cd "$DIST" && pwd)
build=$(mktemp -d "${TMPDIR:-/tmp}/mcc-bridge-package.XXXXXX")
trap 'rm -rf "$build"' EXIT INT TERM

gobuild() { # GOOS GOARCH OUTPUT PACKAGE
	echo "package: go build $4 for $1/$2"
	GOOS=$1 GOARCH=$2 CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$3" "$4"
}

# sign IN OUT: Authenticode with SHA-256; osslsigncode handles PE and MSI.
sign() {
	set -- "$1" "$2" -certs "$SIGN_CERT" -key "$SIGN_KEY" -h sha256 \
		-n "MCC Bridge Agent" -i https://github.com/mcc-bridge/bridge
	if [ -n "$SIGN_PASS_FILE" ]; then
		set -- "$@" -readpass "$SIGN_PASS_FILE"
	fi
	if [ -n "$SIGN_TIMESTAMP_URL" ]; then
		set -- "$@" -ts "$SIGN_TIMESTAMP_URL"
	fi
	sign_in=$1 sign_out=$2
	shift 2
	osslsigncode sign "$@" -in "$sign_in" -out "$sign_out" >"$build/sign.log" 2>&1 ||
		fail "osslsigncode could not sign $sign_in: $(cat "$build/sign.log")"
	echo "package: signed $(basename "$sign_out")"
}

outputs=

# The agent for Linux.
mkdir -p "$build/linux"
gobuild linux amd64 "$build/linux/bridge-agent" ./agent/cmd/bridge-agent
gobuild linux amd64 "$build/linux/bridge-relay" ./relay/cmd/bridge-relay
for packager in deb rpm; do
	out=$(PKG_VERSION=$pkg_version PKG_ARCH=amd64 AGENT_BIN=$build/linux/bridge-agent \
		"$NFPM" package --config installer/packaging/nfpm.yaml --packager "$packager" --target "$dist/" |
		sed -n 's/^created package: //p')
	[ -n "$out" ] || fail "nfpm made no $packager package"
	outputs="$outputs $(basename "$out")"
done

# The relay: the same scripts with the relay's names.
mkdir -p "$build/relay-scripts"
for s in preinstall postinstall preremove postremove; do
	sed -e 's/^pkg=.*/pkg=mcc-bridge-relay/' \
		-e 's/^user=.*/user=bridge-relay/' \
		-e 's/^unit=.*/unit=bridge-relay.service/' \
		-e 's|^state=.*|state=/var/lib/mcc-bridge-relay|' \
		-e 's|^logs=.*|logs=/var/log/mcc-bridge-relay|' \
		-e 's|^config=.*|config=/etc/mcc-bridge/relay.yaml|' \
		-e 's|^template=.*|template=/usr/share/mcc-bridge-relay/relay.yaml|' \
		-e "s|^next=.*|next='Edit the configuration, create the CA as its first lines say, then: systemctl start bridge-relay'|" \
		"installer/packaging/scripts/$s.sh" >"$build/relay-scripts/$s.sh"
done
for packager in deb rpm; do
	out=$(cd "$build" && REPO=$repo PKG_VERSION=$pkg_version PKG_ARCH=amd64 RELAY_BIN=$build/linux/bridge-relay \
		"$NFPM" package --config "$repo/installer/packaging/nfpm-relay.yaml" --packager "$packager" --target "$dist/" |
		sed -n 's/^created package: //p')
	[ -n "$out" ] || fail "nfpm made no relay $packager package"
	outputs="$outputs $(basename "$out")"
done

# The agent for Windows: the .exe, signed, goes into the .msi.
mkdir -p "$build/windows"
gobuild windows amd64 "$build/bridge-agent.exe" ./agent/cmd/bridge-agent
exe=bridge-agent-$pkg_version-windows-amd64.exe
msi=mcc-bridge-agent-$pkg_version-x64.msi
if [ -n "$SIGN_CERT" ]; then
	sign "$build/bridge-agent.exe" "$build/windows/bridge-agent.exe"
else
	mv "$build/bridge-agent.exe" "$build/windows/bridge-agent.exe"
fi
cp "$build/windows/bridge-agent.exe" "$dist/$exe"
(cd "$build/windows" && wixl -a x64 -D Version="$msi_version" -o agent.msi "$repo/installer/packaging/windows/bridge-agent.wxs") ||
	fail "wixl failed"
# wixl drops ServiceInstall/@Vital: set msidbServiceInstallErrorControlVital
# (0x8000) on the normal error control (1), so that a service that cannot be
# registered fails the installation instead of being skipped.
msibuild "$build/windows/agent.msi" -q \
	"UPDATE \`ServiceInstall\` SET \`ErrorControl\` = 32769 WHERE \`ServiceInstall\` = 'AgentServiceInstall'" ||
	fail "msibuild could not mark the service vital"
if [ -n "$SIGN_CERT" ]; then
	sign "$build/windows/agent.msi" "$dist/$msi"
else
	cp "$build/windows/agent.msi" "$dist/$msi"
fi
outputs="$outputs $exe $msi"

# shellcheck disable=SC2086 # outputs is a list of plain file names
(cd "$dist" && sha256sum $outputs >SHA256SUMS)
echo "package: in $DIST:"
for f in $outputs SHA256SUMS; do
	echo "  $f"
done
if [ -z "$SIGN_CERT" ]; then
	echo "package: UNSIGNED: SIGN_CERT is not set, so $exe and $msi carry no Authenticode signature" \
		"(set SIGN_CERT and SIGN_KEY, PEM files, to sign them)"
fi
