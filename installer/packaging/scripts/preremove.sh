#!/bin/sh
# Package preremove: the .deb prerm ($1 = remove, or upgrade when a new
# version replaces this one) and the .rpm %preun ($1 = 0 on erase, 1 on
# upgrade). Only on a real removal, and only where systemd runs, it stops
# and disables the service; an upgrade restarts it in postinstall instead.
#
# The line below names the unit; package.sh rewrites it for the relay.
# MCC_BRIDGE_ROOT prefixes the paths the script checks; it is empty except
# in tests.
unit=mcc-bridge-agent.service
set -e
root=${MCC_BRIDGE_ROOT:-}

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d "$root/run/systemd/system" ]; then
	systemctl stop "$unit" || true
	systemctl disable "$unit" || true
fi
exit 0
