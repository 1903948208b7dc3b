#!/bin/sh
# Package postinstall: the .deb postinst ($1 = configure, with the version
# configured before in $2 when there is one) and the .rpm %post ($1 = 1 on
# install, 2 or more on upgrade).
#
# It makes the configuration file from the packaged template when there is
# none (it never replaces one: the file is not a conffile, see nfpm.yaml),
# gives the state and log directories to the service user and the
# configuration file to its group (mode 0640: it may hold a proxy password).
# Where systemd runs, it reloads the units; on a new installation it enables
# the service (which starts once configured, see the message below), on an
# upgrade it restarts the service if it was running.
#
# The lines below name the package; package.sh rewrites them for the relay.
# MCC_BRIDGE_ROOT prefixes the paths the script touches; it is empty except
# in tests.
pkg=mcc-bridge-agent
user=mcc-bridge
unit=mcc-bridge-agent.service
state=/var/lib/mcc-bridge
logs=/var/log/mcc-bridge
config=/etc/mcc-bridge/agent.yaml
template=/usr/share/mcc-bridge-agent/agent.yaml
next='Enroll it and start the service: bridge-agent install --token TOKEN --relay HOST:PORT'
set -e
root=${MCC_BRIDGE_ROOT:-}

case "$1" in
configure)
	action=upgrade
	if [ -z "$2" ]; then
		action=install
	fi
	if [ -e "$root/run/$pkg.enable" ]; then
		action=install
		rm -f "$root/run/$pkg.enable"
	fi
	;;
1) action=install ;;
[0-9]*) action=upgrade ;;
*) exit 0 ;; # abort-upgrade, abort-remove, ...: nothing changed
esac

for dir in "$root$state" "$root$logs"; do
	mkdir -p "$dir"
	chown -R "$user:$user" "$dir"
	chmod 0750 "$dir"
done
if [ ! -e "$root$config" ] && [ -f "$root$template" ]; then
	mkdir -p "$(dirname "$root$config")"
	# Made under a temporary name and renamed: never half a file, and
	# never readable by others in between.
	(umask 077 && cp "$root$template" "$root$config.tmp-$$")
	mv -f "$root$config.tmp-$$" "$root$config"
	echo "$pkg: wrote $config from $template"
fi
if [ -f "$root$config" ]; then
	chgrp "$user" "$root$config"
	chmod 0640 "$root$config"
fi

if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload || true
	if [ "$action" = install ]; then
		systemctl enable "$unit" || true
	else
		systemctl try-restart "$unit" || true
	fi
fi

if [ "$action" = install ]; then
	echo "$pkg is installed: configuration $config, state $state, logs $logs."
	echo "$next"
fi
exit 0
