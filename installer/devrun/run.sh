#!/usr/bin/env bash
# `make run`: a relay and an agent on this machine, connected through the
# tunnel. The relay runs its own step-ca; the agent enrolls with a one-time
# token on the first run. State lives in .run/ and is reused by the next run.
# Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=.run
relay_port=${RELAY_PORT:-8443}
mkdir -p "$state"

# Configs from an older make run (fixed dev certificates) are replaced.
if [ -f "$state/relay.yaml" ] && ! grep -q '^pki:' "$state/relay.yaml"; then
	mv "$state/relay.yaml" "$state/relay.yaml.old"
	mv "$state/agent.yaml" "$state/agent.yaml.old" 2>/dev/null || true
fi
if [ ! -f "$state/relay.yaml" ]; then
	cat > "$state/relay.yaml" <<YAML
# Written by make run. Keys and defaults: README.md, "Relay configuration".
listen: 127.0.0.1:$relay_port
relay_id: relay-local
pki:
  ca:
    dir: ca                  # a step-ca inside the relay, created on first start
    listen: 127.0.0.1:9000
    init: true
  state_dir: relay-state     # the relay's own certificate (renewed) and deny list
ops:
  listen: 127.0.0.1:9465
YAML
fi
if [ -f "$state/agent.yaml" ] && ! grep -q '^sharepoint:' "$state/agent.yaml"; then
	mv "$state/agent.yaml" "$state/agent.yaml.old"
fi
if [ ! -f "$state/agent.yaml" ]; then
	cat > "$state/agent.yaml" <<YAML
# Written by make run. Keys and defaults: README.md, "Agent configuration".
relays: ["localhost:$relay_port"]
proxy: direct
pki:
  state_dir: agent-state     # filled by bridge-agent enroll; renews itself
ops:
  listen: 127.0.0.1:9464
sharepoint:                  # the SharePoint emulator that make run starts
  sites: ["http://127.0.0.1:8088/sites/mkt"]
  auth:
    method: ntlm
    username: CONTOSO\svc-bridge
    password_file: sp-password
  poll_interval: 5s
  requests_per_second: 200   # the emulator is local; keep the default (20) for a real farm
YAML
fi
# The dispatch API (added after the first make runs): dev tokens, Cedar
# policies and the audit log under .run/.
if ! grep -q '^api:' "$state/relay.yaml"; then
	cat >> "$state/relay.yaml" <<YAML
api:                         # the platform's front door: POST /v1/dispatch
  listen: 127.0.0.1:8080
  dev_tokens: true           # trust 'bridge-relay dev-token' (a local trial only)
  policies: policies         # Cedar, one folder per tenant; reloaded on change
  audit: audit               # hash-chained audit log; 'bridge-relay audit verify'
YAML
fi
[ -f "$state/policies/acme/main.cedar" ] || bin/bridge-relay policies example --tenant acme --dir "$state/policies" >/dev/null
[ -f "$state/sp-password" ] || { head -c 18 /dev/urandom | base64 > "$state/sp-password"; chmod 600 "$state/sp-password"; }

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

# The CA's database (badger) logs its housekeeping at INFO: hide it here.
prefix() { while IFS= read -r line; do case "$line" in "badger "*) ;; *) printf '%s %s\n' "$1" "$line" ;; esac; done; }

bin/bridge-agent sharepoint-emulator --listen 127.0.0.1:8088 --items 300 --password-file "$state/sp-password" \
	> >(prefix "[sharepoint]") 2> >(grep -v 'level=DEBUG' | prefix "[sharepoint]") &
pids+=($!)
bin/bridge-relay serve --config "$state/relay.yaml" 2> >(prefix "[relay]") &
pids+=($!)
for _ in $(seq 1 100); do
	if bin/bridge-relay agents >/dev/null 2>&1; then break; fi
	sleep 0.2
done

if [ ! -f "$state/agent-state/agent.crt" ]; then
	echo
	echo "== enrolling the agent with a one-time token from the relay's CA"
	echo "   bridge-relay agents token --tenant acme --agent agent-01 | bridge-agent enroll --token - --state-dir $state/agent-state"
	bin/bridge-relay agents token --tenant acme --agent agent-01 2>/dev/null |
		bin/bridge-agent enroll --token - --state-dir "$state/agent-state"
fi

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
echo "== the agent crawls the SharePoint emulator into the relay's store (progress every 10 s in the log)"
for _ in $(seq 1 60); do
	if bin/bridge-agent status --ops 127.0.0.1:9464 2>/dev/null | grep -q 'crawl .*: incremental'; then break; fi
	sleep 1
done
bin/bridge-agent status --ops 127.0.0.1:9464 | grep -A1 '^crawl' || true
echo
echo "== a platform call through the dispatcher: a dev token for sarah (campaign-manager), then search_documents"
token=$(bin/bridge-relay dev-token --config "$state/relay.yaml" --tenant acme --user sarah --email user01@contoso.com --roles campaign-manager)
echo '   curl -s -H "Authorization: Bearer $token" 127.0.0.1:8080/v1/dispatch \'
echo "     -d '{\"targetSystem\":\"sharepoint\",\"operation\":\"search_documents\",\"payload\":{\"query\":\"budget\",\"limit\":3}}'"
curl -s -H "Authorization: Bearer $token" 127.0.0.1:8080/v1/dispatch \
	-d '{"targetSystem":"sharepoint","operation":"search_documents","payload":{"query":"budget","limit":3}}' |
	head -c 600 || true
echo
echo
cat <<TXT
Running. Try:
  bin/bridge-agent status             tunnel sessions, transport, RTT, certificate and renewal
  bin/bridge-relay agents             the relay's registry of agents and its PKI state (JSON)
  bin/bridge-relay agents revoke acme/agent-01   revoke the agent (allow it again with 'agents allow';
                                      then rm -r .run/agent-state and make run enrolls it anew)
  bin/bridge-relay ping acme/agent-01 a request from the relay to the agent over the tunnel
  curl -s 127.0.0.1:9464/metrics      agent metrics (relay: 127.0.0.1:9465)
  open http://127.0.0.1:9465/status   the relay's health dashboard (refreshes itself)
  token=\$(bin/bridge-relay dev-token --config .run/relay.yaml --tenant acme --user root --roles admin)
  curl -s -H "Authorization: Bearer \$token" 127.0.0.1:8080/v1/connectors   connectors, operations, schemas
  curl -s -H "Authorization: Bearer \$token" '127.0.0.1:8080/v1/audit?limit=5'   the tenant's audit records
  bin/bridge-relay audit verify --config .run/relay.yaml   check the audit hash chains
  curl -s -X POST 127.0.0.1:8088/_emu/files -d '{"folder":"/sites/mkt/Shared Documents","name":"new.txt","size":100}'
                                      add a file to SharePoint; it reaches the relay within a poll (5 s)
Ctrl-C stops everything.
TXT
wait
