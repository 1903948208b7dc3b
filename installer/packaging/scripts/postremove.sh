#!/bin/sh
# Package postremove: the .deb postrm ($1 = remove, purge, upgrade,
# abort-install, ...) and the .rpm %postun ($1 = 0 on erase, 1 on upgrade).
# Where systemd runs it reloads the units. It never deletes the state (the
# enrolled identity, the CA, checkpoints, databases), the logs or the user,
# not even on purge: it says where they are. On purge it deletes the
# configuration file (postinstall made it, so dpkg does not know it) and the
# backups `bridge-agent install` made of it; removal and rpm -e keep them.
#
# The lines below name the package; package.sh rewrites them for the relay.
# MCC_BRIDGE_ROOT prefixes the paths the script checks; it is empty except
# in tests.
pkg=mcc-bridge-agent
user=mcc-bridge
state=/var/lib/mcc-bridge
logs=/var/log/mcc-bridge
config=/etc/mcc-bridge/agent.yaml
set -e
root=${MCC_BRIDGE_ROOT:-}

if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload || true
fi

case "$1" in
remove | 0)
	echo "$pkg: kept $config, $state and $logs; delete them by hand when no longer needed."
	;;
purge)
	rm -f "$root$config" "$root$config".bak-* "$root$config".tmp-*
	rmdir "$(dirname "$root$config")" 2>/dev/null || true # only when empty: another package's file stays
	echo "$pkg: deleted $config; kept $state, $logs and the user $user; delete them by hand when no longer needed."
	;;
esac
exit 0
