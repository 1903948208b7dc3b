#!/bin/sh
# Package preinstall: the .deb preinst ($1 = install or upgrade) and the
# .rpm %pre ($1 = 1 on install, 2 on upgrade). It creates the system group
# and user the service runs as, when they are missing.
#
# The lines below name the package; package.sh rewrites them for the relay.
# MCC_BRIDGE_ROOT prefixes the paths the script touches; it is empty except
# in tests.
pkg=mcc-bridge-agent
user=mcc-bridge
state=/var/lib/mcc-bridge
set -e
root=${MCC_BRIDGE_ROOT:-}

if ! getent group "$user" >/dev/null 2>&1; then
	groupadd --system "$user"
fi
if ! getent passwd "$user" >/dev/null 2>&1; then
	useradd --system --gid "$user" --no-create-home --home-dir "$state" \
		--shell /usr/sbin/nologin --comment "MCC Bridge ($pkg)" "$user"
fi

# A .deb installed afresh, also over the configuration files that a removed
# one left (where postinst is told a previous version, as on an upgrade),
# leaves postinstall a note to enable the unit. rpm says it itself ($1 = 1).
if [ "$1" = install ] && [ -d "$root/run/systemd/system" ]; then
	: >"$root/run/$pkg.enable"
fi
exit 0
