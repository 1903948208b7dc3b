#!/usr/bin/env bash
# `make run`: a relay and an agent on this machine, connected through the
# tunnel, with throwaway certificates. State lives in .run/ and is reused by
# the next run. Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=.run
relay_port=${RELAY_PORT:-8443}
mkdir -p "$state"

bin/bridge-relay dev-certs --dir "$state/pki"

if [ ! -f "$state/relay.yaml" ]; then
	cat > "$state/relay.yaml" <<YAML
# Written by make run. Keys and defaults: README.md, "Relay configuration".
listen: 127.0.0.1:$relay_port
relay_id: relay-local
tls:
  cert: pki/relay.crt
  key: pki/relay.key
  ca: pki/root.crt
ops:
  listen: 127.0.0.1:9465
YAML
fi
if [ ! -f "$state/agent.yaml" ]; then
	cat > "$state/agent.yaml" <<YAML
# Written by make run. Keys and defaults: README.md, "Agent configuration".
relays: ["localhost:$relay_port"]
proxy: direct
tls:
  cert: pki/agent.crt
  key: pki/agent.key
  ca: pki/root.crt
ops:
  listen: 127.0.0.1:9464
YAML
fi

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping: the relay drains its sessions (GOAWAY), then the agent stops"
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped; state kept in $state/ for the next run"
}
trap stop INT TERM EXIT

prefix() { while IFS= read -r line; do printf '%s %s\n' "$1" "$line"; done; }

bin/bridge-relay serve --config "$state/relay.yaml" 2> >(prefix "[relay]") &
pids+=($!)
bin/bridge-agent run --config "$state/agent.yaml" 2> >(prefix "[agent]") &
pids+=($!)

for _ in $(seq 1 100); do
	if bin/bridge-agent status --ops 127.0.0.1:9464 >/dev/null 2>&1; then break; fi
	sleep 0.2
done

echo
echo "== bridge-agent status"
bin/bridge-agent status --ops 127.0.0.1:9464 || true
echo
echo "== the relay calls the agent through the tunnel: bridge-relay ping acme/agent-01"
bin/bridge-relay ping acme/agent-01 || true
echo
cat <<TXT
Running. Try:
  bin/bridge-agent status             tunnel sessions, transport, RTT, certificate
  bin/bridge-relay agents             the relay's registry of agents (JSON)
  bin/bridge-relay ping acme/agent-01 a request from the relay to the agent over the tunnel
  curl -s 127.0.0.1:9464/metrics      agent metrics (relay: 127.0.0.1:9465)
Ctrl-C stops both.
TXT
wait
