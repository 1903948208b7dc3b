#!/usr/bin/env bash
# `make run`: the whole platform on this machine, with embedded defaults:
#   - a relay with its own step-ca (the dev CA) and its embedded store,
#   - the SharePoint emulator with generated sample content,
#   - an agent, enrolled with a one-time token on the first run, that crawls
#     the emulator over the tunnel into the relay's store.
# It shows the crawl's progress, then prints the dashboard URL, a dev caller
# token and a ready curl for POST /v1/dispatch, and runs that curl. Ctrl-C
# (SIGINT) or SIGTERM stops everything and exits 0 once every child has
# stopped (at most STOP_TIMEOUT seconds; after that, or on a second Ctrl-C,
# it kills what is left, says so and exits 1). State lives in RUN_DIR
# and the next run reuses it (same CA, no new enrollment, the store keeps its
# documents); rm -r RUN_DIR starts afresh. It needs only bash and the two
# binaries (make build); without curl it makes the same request through
# bash's /dev/tcp.
#
# Environment (defaults in brackets), e.g. to run a second stack beside
# `make run`: RUN_DIR=/tmp/r2 RELAY_PORT=18443 ... installer/devrun/run.sh
#   RUN_DIR         state directory, relative to the repository root [.run]
#   BIN_DIR         where bridge-relay and bridge-agent are [bin]
#   RELAY_PORT      the relay's tunnel port, UDP (QUIC) and TCP [8443]
#   CA_PORT         the relay's step-ca [9000]
#   AGENT_OPS_PORT  the agent's ops server: status, metrics [9464]
#   RELAY_OPS_PORT  the relay's ops server: dashboard, agents, tokens [9465]
#   API_PORT        the relay's API: POST /v1/dispatch [8080]
#   SP_PORT         the SharePoint emulator [8088]
#   SP_ITEMS        the emulator's items per list [300]
#   CRAWL_TIMEOUT   seconds to wait for the first full crawl [180]
#   STOP_TIMEOUT    seconds to wait for a clean stop before killing [40]
#   CURL            the curl command [curl]; when it is missing, the request
#                   goes through bash's /dev/tcp instead
# The ports (all on 127.0.0.1) go into the configurations written on the first
# run on a RUN_DIR. Later runs read them back from RUN_DIR/relay.yaml and
# RUN_DIR/agent.yaml, which is also how configurations written by older
# versions of this script (with the default ports) keep working: a port
# variable that disagrees with them is ignored with a note.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=${RUN_DIR:-.run}
bin=${BIN_DIR:-bin}
sp_items=${SP_ITEMS:-300}
crawl_timeout=${CRAWL_TIMEOUT:-180}
stop_timeout=${STOP_TIMEOUT:-40}
curl_cmd=${CURL:-curl}

die() {
	echo "run.sh: $*" >&2
	exit 1
}

for b in bridge-relay bridge-agent; do
	[ -x "$bin/$b" ] || die "$bin/$b is missing: run 'make build' first (or set BIN_DIR)"
done

# yaml_get FILE KEY.PATH prints the value of a key of the simple YAML this
# script writes (two-space indentation, no lists of maps), or nothing.
yaml_get() {
	[ -f "$1" ] || return 0
	awk -v want="$2" '
		{
			line = $0
			sub(/[[:space:]]+#.*$/, "", line)
			if (line ~ /^[[:space:]]*(#.*)?$/) next
			match(line, /^ */)
			depth = RLENGTH / 2
			key = substr(line, RLENGTH + 1)
			val = key
			sub(/:.*$/, "", key)
			if (!sub(/^[^:]*:[[:space:]]*/, "", val)) next
			path[depth] = key
			p = path[0]
			for (i = 1; i <= depth; i++) p = p "." path[i]
			if (p == want) { sub(/[[:space:]]+$/, "", val); print val; exit }
		}' "$1"
}

# hostport strips a YAML list, quotes and a URL down to host:port.
hostport() {
	local v=$1
	v=${v#[}
	v=${v%]}
	v=${v%%,*}
	v=${v//\"/}
	v=${v#*://}
	v=${v%%/*}
	printf '%s\n' "$v"
}

# dialable ADDR DEFAULT turns a listen address into one to connect to.
dialable() {
	local a=${1:-$2}
	local host=${a%:*} port=${a##*:}
	case "$host" in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
	printf '%s:%s\n' "$host" "$port"
}

# check_port NAME VAR ADDR FILE notes an ignored port variable.
check_port() {
	local want=${!2:-}
	if [ -n "$want" ] && [ "$want" != "${3##*:}" ]; then
		echo "note: $2=$want ignored: $4 (from an earlier run) sets the $1 at $3"
	fi
}

if [ -f "$state/relay.yaml" ]; then
	echo "== reusing $state/ from an earlier run: its CA, the agent's identity, the store and the audit log (rm -r $state for a fresh start)"
else
	echo "== new state in $state/ (the next make run reuses it)"
fi
mkdir -p "$state"

# Configs from an older make run (fixed dev certificates) are replaced.
if [ -f "$state/relay.yaml" ] && ! grep -q '^pki:' "$state/relay.yaml"; then
	mv "$state/relay.yaml" "$state/relay.yaml.old"
	mv "$state/agent.yaml" "$state/agent.yaml.old" 2>/dev/null || true
fi
if [ ! -f "$state/relay.yaml" ]; then
	cat >"$state/relay.yaml" <<YAML
# Written by make run. Keys and defaults: README.md, "Relay configuration".
listen: 127.0.0.1:${RELAY_PORT:-8443}
relay_id: relay-local
pki:
  ca:
    dir: ca                  # a step-ca inside the relay, created on first start
    listen: 127.0.0.1:${CA_PORT:-9000}
    init: true
  state_dir: relay-state     # the relay's own certificate (renewed) and deny list
ops:
  listen: 127.0.0.1:${RELAY_OPS_PORT:-9465}
YAML
fi
# The dispatch API (added after the first make runs): dev tokens, Cedar
# policies and the audit log under RUN_DIR.
if ! grep -q '^api:' "$state/relay.yaml"; then
	cat >>"$state/relay.yaml" <<YAML
api:                         # the platform's front door: POST /v1/dispatch
  listen: 127.0.0.1:${API_PORT:-8080}
  dev_tokens: true           # trust 'bridge-relay dev-token' (a local trial only)
  policies: policies         # Cedar, one folder per tenant; reloaded on change
  audit: audit               # hash-chained audit log; 'bridge-relay audit verify'
YAML
fi
relay_addr=$(yaml_get "$state/relay.yaml" listen)
relay_addr=${relay_addr:-:8443}
relay_port=${relay_addr##*:}
if [ -f "$state/agent.yaml" ] && ! grep -q '^sharepoint:' "$state/agent.yaml"; then
	mv "$state/agent.yaml" "$state/agent.yaml.old"
fi
if [ ! -f "$state/agent.yaml" ]; then
	cat >"$state/agent.yaml" <<YAML
# Written by make run. Keys and defaults: README.md, "Agent configuration".
relays: ["localhost:$relay_port"]
proxy: direct
pki:
  state_dir: agent-state     # filled by bridge-agent enroll; renews itself
ops:
  listen: 127.0.0.1:${AGENT_OPS_PORT:-9464}
sharepoint:                  # the SharePoint emulator that make run starts
  sites: ["http://127.0.0.1:${SP_PORT:-8088}/sites/mkt"]
  auth:
    method: ntlm
    username: CONTOSO\svc-bridge
    password_file: sp-password
  poll_interval: 5s
  requests_per_second: 200   # the emulator is local; keep the default (20) for a real farm
YAML
fi
[ -f "$state/policies/acme/main.cedar" ] || "$bin/bridge-relay" policies example --tenant acme --dir "$state/policies" >/dev/null
[ -f "$state/sp-password" ] || {
	head -c 18 /dev/urandom | base64 >"$state/sp-password"
	chmod 600 "$state/sp-password"
}

# The addresses in use are the configurations' (defaults: the binaries').
ca_addr=$(yaml_get "$state/relay.yaml" pki.ca.listen)
ca_addr=${ca_addr:-127.0.0.1:9000}
relay_ops=$(dialable "$(yaml_get "$state/relay.yaml" ops.listen)" 127.0.0.1:9465)
api_addr=$(dialable "$(yaml_get "$state/relay.yaml" api.listen)" 127.0.0.1:8080)
agent_ops=$(dialable "$(yaml_get "$state/agent.yaml" ops.listen)" 127.0.0.1:9464)
sp_site=$(yaml_get "$state/agent.yaml" sharepoint.sites)
sp_site=${sp_site#[}
sp_site=${sp_site%%,*}
sp_site=${sp_site%]}
sp_site=${sp_site//\"/}
sp_site=${sp_site:-http://127.0.0.1:8088/sites/mkt}
sp_addr=$(hostport "$sp_site")
check_port "relay" RELAY_PORT "$relay_addr" "$state/relay.yaml"
check_port "CA" CA_PORT "$ca_addr" "$state/relay.yaml"
check_port "relay's ops server" RELAY_OPS_PORT "$relay_ops" "$state/relay.yaml"
check_port "API" API_PORT "$api_addr" "$state/relay.yaml"
check_port "agent's ops server" AGENT_OPS_PORT "$agent_ops" "$state/agent.yaml"
check_port "SharePoint emulator" SP_PORT "$sp_addr" "$state/agent.yaml"

# Something already listening (another make run?) would make a child fail
# half-way: say so now.
for a in "relay:$(dialable "$relay_addr" :8443)" "CA:$(dialable "$ca_addr" :9000)" "relay ops:$relay_ops" "API:$api_addr" \
	"agent ops:$agent_ops" "SharePoint emulator:$sp_addr"; do
	what=${a%%:*}
	addr=${a#*:}
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
		die "$addr ($what) is in use: is another make run running? Stop it, or use another RUN_DIR with other ports (see the top of $0)"
	fi
done

# The agent's crawl checkpoints say what the relay's store holds: without
# the store (deleted by hand), the agent would only follow the change log
# and the store would stay empty. Crawl anew then.
store_dir=$(yaml_get "$state/relay.yaml" store.dir)
store_dir=${store_dir:-store}
agent_state=$(yaml_get "$state/agent.yaml" pki.state_dir)
agent_state=${agent_state:-agent-state}
crawl_dir=$(yaml_get "$state/agent.yaml" sharepoint.state_dir)
crawl_dir=${crawl_dir:-$agent_state/crawl}
case "$store_dir" in /*) ;; *) store_dir=$state/$store_dir ;; esac
case "$agent_state" in /*) ;; *) agent_state=$state/$agent_state ;; esac
case "$crawl_dir" in /*) ;; *) crawl_dir=$state/$crawl_dir ;; esac
if [ -d "$crawl_dir" ] && [ ! -e "$store_dir" ]; then
	echo "note: $store_dir is gone but the agent's crawl checkpoints are not: removing $crawl_dir, so that the agent crawls anew"
	rm -rf "$crawl_dir"
fi

pids=()  # the children
names=() # their names, for messages
logs=()  # the log prefixers' pids
hurry=0

# prefix copies a child's log lines to stdout behind a name. It ignores
# SIGINT, so that it keeps copying while the children stop after Ctrl-C.
# The CA's database (badger) logs its housekeeping at INFO: hidden here.
prefix() {
	trap '' INT TERM
	while IFS= read -r line; do
		case "$line" in "badger "* | *level=DEBUG*) ;; *) printf '%s %s\n' "$1" "$line" ;; esac
	done
}

# start NAME CMD... runs a child in the background, its output prefixed.
start() {
	local name=$1 fd
	shift
	exec {fd}> >(prefix "[$name]")
	logs+=($!)
	"$@" 1>&"$fd" 2>&1 &
	pids+=($!)
	names+=("$name")
	exec {fd}>&-
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop interrupts the children, waits for them (at most STOP_TIMEOUT
# seconds, or until a second Ctrl-C), then kills what is left. It returns 1
# if something had to be killed.
stop() {
	trap - EXIT
	trap 'hurry=1' INT TERM
	[ ${#pids[@]} -gt 0 ] || return 0
	echo
	echo "== stopping (at most ${stop_timeout}s; Ctrl-C again kills): the relay drains its sessions (GOAWAY), the agent and the emulator stop"
	local i p n=0 deadline=$((SECONDS + stop_timeout)) killed=()
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	while [ "$hurry" = 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
		n=0
		for p in "${pids[@]}"; do alive "$p" && n=$((n + 1)); done
		[ "$n" -gt 0 ] || break
		sleep 0.2
	done
	for i in "${!pids[@]}"; do
		if alive "${pids[$i]}"; then
			kill -KILL "${pids[$i]}" 2>/dev/null || true
			killed+=("[${names[$i]}]")
		fi
	done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	# The prefixers end when the last writer is gone: let them print the rest.
	for p in "${logs[@]}"; do
		for _ in $(seq 1 25); do alive "$p" || break; sleep 0.2; done
	done
	if [ ${#killed[@]} -gt 0 ]; then
		echo "== KILLED ${killed[*]}: it did not stop within ${stop_timeout}s (or Ctrl-C came twice); state kept in $state/"
		return 1
	fi
	echo "== stopped cleanly; state kept in $state/ for the next run"
}
on_signal() {
	stop && exit 0
	exit 1
}
on_exit() {
	local rc=$?
	stop || rc=1
	exit "$rc"
}
trap on_signal INT TERM
trap on_exit EXIT

start sharepoint "$bin/bridge-agent" sharepoint-emulator --listen "$sp_addr" --items "$sp_items" --password-file "$state/sp-password"
start relay "$bin/bridge-relay" serve --config "$state/relay.yaml"
relay_pid=${pids[1]}

# The first start creates the CA: give it time.
for _ in $(seq 1 150); do
	if "$bin/bridge-relay" agents --ops "$relay_ops" >/dev/null 2>&1; then break; fi
	alive "$relay_pid" || die "the relay exited; its log is above"
	sleep 0.2
done
"$bin/bridge-relay" agents --ops "$relay_ops" >/dev/null 2>&1 || die "the relay's ops server ($relay_ops) did not come up in 30s"

if [ ! -f "$agent_state/agent.crt" ]; then
	echo
	echo "== enrolling the agent with a one-time token from the relay's CA"
	echo "   $bin/bridge-relay agents token --tenant acme --agent agent-01 --ops $relay_ops | $bin/bridge-agent enroll --token - --state-dir $agent_state"
	"$bin/bridge-relay" agents token --tenant acme --agent agent-01 --ops "$relay_ops" 2>/dev/null |
		"$bin/bridge-agent" enroll --token - --state-dir "$agent_state"
else
	echo
	echo "== the agent is enrolled already ($agent_state/agent.crt): no new token; it renews its certificate itself"
fi

[ -d "$crawl_dir" ] && earlier=1 || earlier=0 # a crawl checkpoint from an earlier run
start agent "$bin/bridge-agent" run --config "$state/agent.yaml"
agent_pid=${pids[2]}

for _ in $(seq 1 150); do
	if "$bin/bridge-agent" status --ops "$agent_ops" >/dev/null 2>&1; then break; fi
	alive "$agent_pid" || die "the agent exited; its log is above"
	sleep 0.2
done

echo
echo "== $bin/bridge-agent status --ops $agent_ops"
"$bin/bridge-agent" status --ops "$agent_ops" || true
echo
echo "== the relay calls the agent through the tunnel: $bin/bridge-relay ping acme/agent-01 --ops $relay_ops"
"$bin/bridge-relay" ping acme/agent-01 --ops "$relay_ops" || true
echo

# crawl_lines prints the agent's crawl lines (and their errors) from status.
crawl_lines() {
	local out
	out=$("$bin/bridge-agent" status --ops "$agent_ops" 2>/dev/null) || true
	printf '%s\n' "$out" | grep -E '^crawl|^ +ERROR:' | sed -E 's/^crawl +//; s/, last (change|poll) [^,]*//g; s/^ +/    /' || true
}
echo "== the agent crawls $sp_site into the relay's store, over the tunnel (SP_ITEMS=$sp_items per list)"
began=$SECONDS
first=1
last=-100
while :; do
	lines=$(crawl_lines)
	if [ -n "$lines" ] && ! printf '%s\n' "$lines" | grep -v '^    ' | grep -qv ': incremental'; then
		if [ "$first" = 1 ] && [ "$earlier" = 1 ]; then
			echo "== crawl finished (in an earlier run; checkpoints in $crawl_dir): the agent follows the change log"
		else
			echo "== crawl finished in $((SECONDS - began))s: the agent follows the change log now (every 5s)"
		fi
		printf '%s\n' "$lines" | sed 's/^/   /'
		break
	fi
	if [ $((SECONDS - began)) -ge "$crawl_timeout" ]; then
		echo "== the crawl has not finished after ${crawl_timeout}s (CRAWL_TIMEOUT); it goes on in the background. Now:"
		printf '%s\n' "${lines:-no crawl status from the agent}" | sed 's/^/   /'
		break
	fi
	alive "$agent_pid" || die "the agent exited; its log is above"
	if [ $((SECONDS - last)) -ge 2 ]; then
		printf '%s\n' "${lines:-waiting for the crawl status of the agent}" | sed "s/^/   [$((SECONDS - began))s] /"
		last=$SECONDS
	fi
	first=0
	sleep 1
done

echo
token=$("$bin/bridge-relay" dev-token --config "$state/relay.yaml" --tenant acme --user sarah --email user01@contoso.com --roles campaign-manager)
body='{"targetSystem":"sharepoint","operation":"search_documents","payload":{"query":"budget","limit":3}}'
url=http://$api_addr/v1/dispatch
have_curl=0
shown_curl=curl
if command -v "$curl_cmd" >/dev/null 2>&1; then
	have_curl=1
	shown_curl=$curl_cmd
fi
curl_line="$shown_curl -sS -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' -d '$body' $url"
cat <<TXT
== ready
dashboard   http://$relay_ops/status   (the relay's health dashboard; refreshes itself)
dev token   sarah of tenant acme, role campaign-manager, valid 1 hour:
$token
search      the crawled documents through POST /v1/dispatch (paste it anywhere):
$curl_line

== running that curl:
TXT

# post_devtcp makes the request of curl_line with bash alone (HTTP/1.0, so
# that the answer ends with the connection, unchunked), printing the body.
post_devtcp() {
	local hp=${url#http://} line header=1 cr=$'\r'
	hp=${hp%%/*}
	exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" || return 1
	printf 'POST /%s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
		"${url#http://*/}" "$hp" "$token" "${#body}" "$body" >&3
	while IFS= read -r -t 35 line <&3 || [ -n "$line" ]; do
		if [ "$header" = 1 ]; then
			[ "${line%"$cr"}" != "" ] || header=0
		else
			printf '%s\n' "$line"
		fi
		line=
	done
	exec 3<&-
}
if [ "$have_curl" = 1 ]; then
	out=$(eval "$curl_line" 2>&1) || true
else
	echo "($curl_cmd is not installed: the same request through bash's /dev/tcp)"
	out=$(post_devtcp 2>&1) || true
fi
printf '%s' "$out" | head -c 700
[ "${#out}" -le 700 ] || printf ' ... (%d bytes in all)' "${#out}"
echo
count=$(printf '%s' "$out" | grep -o '"count": *[0-9]*' | head -n 1 | grep -o '[0-9]*$' || true)
if [ "${count:-0}" -gt 0 ]; then
	echo "== the search found $count documents"
elif [ -n "$count" ]; then
	echo "== the search found no documents: is the crawl done? (see above)"
else
	echo "== the search failed: see the answer above and the [relay] log"
fi

cat <<TXT

Running. Try:
  $bin/bridge-agent status --ops $agent_ops    tunnel sessions, transport, RTT, certificate, renewal and crawl
  $bin/bridge-relay agents --ops $relay_ops     the relay's registry of agents and its PKI state (JSON)
  $bin/bridge-relay agents revoke acme/agent-01 --ops $relay_ops   revoke the agent (allow it again with
                                      'agents allow'; then rm -r $agent_state and make run enrolls it anew)
  $bin/bridge-relay ping acme/agent-01 --ops $relay_ops   a request from the relay to the agent over the tunnel
  curl -s $agent_ops/metrics      agent metrics (relay: $relay_ops/metrics)
  open http://$relay_ops/status   the relay's health dashboard (refreshes itself)
  token=\$($bin/bridge-relay dev-token --config $state/relay.yaml --tenant acme --user root --roles admin)
  curl -s -H "Authorization: Bearer \$token" $api_addr/v1/connectors   connectors, operations, schemas
  curl -s -H "Authorization: Bearer \$token" '$api_addr/v1/audit?limit=5'   the tenant's audit records
  $bin/bridge-relay audit verify --config $state/relay.yaml   check the audit hash chains
  curl -s -X POST $sp_addr/_emu/files -d '{"folder":"/sites/mkt/Shared Documents","name":"new.txt","size":100}'
                                      add a file to SharePoint; it reaches the relay within a poll (5 s)
Ctrl-C stops everything.
TXT

# Wait for Ctrl-C. A child that ends by itself stops the rest, and the exit
# status is its own: 0 when it stopped on a signal, as when SIGINT reaches
# the process group of a shell started with SIGINT ignored (`make run &`
# from a script), which cannot trap it.
while :; do
	for i in "${!pids[@]}"; do
		if ! alive "${pids[$i]}"; then
			rc=0
			wait "${pids[$i]}" || rc=$?
			echo "== [${names[$i]}] stopped by itself (status $rc): stopping the rest"
			unset "pids[$i]" "names[$i]"
			trap - EXIT
			stop || rc=1
			exit "$rc"
		fi
	done
	sleep 1
done
