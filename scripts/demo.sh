#!/usr/bin/env bash
# Install policyc and run it on the shipped samples: check, compile, explain, nft dry run.
# As root (with nftables, wireguard-go and iproute2), it then shows the whole loop:
# a control server, three nodes in network namespaces joined with auth keys, a policy
# applied, an allowed and a denied connection, a narrower policy pushed and the
# connection refused, control stopped and the mesh still up. Everything it makes
# (namespaces, processes, interfaces, the temporary directory) is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e .
(
  set -x
  policyc check samples/policy.hujson --nodes samples/nodes.json
  policyc compile samples/policy.hujson --nodes samples/nodes.json --node prod-db
  policyc explain samples/policy.hujson --nodes samples/nodes.json alice-laptop prod-db:22 || true
  policyc explain samples/policy.hujson --nodes samples/nodes.json frank-laptop prod-db:5432 || true
  policyc nft samples/policy.hujson --nodes samples/nodes.json --node prod-db
)

missing=""
[ "$(id -u)" -eq 0 ] || missing="root"
for tool in ip nft wg wireguard-go nc; do
  command -v "$tool" >/dev/null 2>&1 || missing="${missing:+$missing, }$tool"
done
if [ -n "$missing" ]; then
  echo "demo: the live tailnet part needs ${missing}; showed the file-only steps above"
  exit 0
fi

# --- the live loop -------------------------------------------------------------------
id=$$
hub="pcdemo${id}hub"
work="$(mktemp -d /tmp/policyc-demo.XXXXXX)"
control_url="http://198.18.0.1:8080"
nodes=(alice web db)
declare -A owner=([alice]="--user alice@example.com" [web]="--tag tag:web" [db]="--tag tag:db")
declare -A agent_pid=()
control_pid=""

ns() { echo "pcdemo${id}$1"; }
iface() { echo "pcwd${id}$1"; }
in_ns() { local n="$1"; shift; ip netns exec "$(ns "$n")" "$@"; }
say() { echo "demo: $*"; }
admin() { ip netns exec "$hub" env POLICYC_TOKEN="$(cat "$work/control/admin.token")" \
  policyc "$@" --server "$control_url"; }

cleanup() {
  set +e
  # bash reports a killed background job on its stderr as soon as it reaps it:
  # the whole kill-and-reap block writes its stderr to /dev/null (no "Killed" notices)
  {
    for n in "${nodes[@]}"; do
      [ -n "${agent_pid[$n]:-}" ] && kill "${agent_pid[$n]}"
    done
    [ -n "$control_pid" ] && kill "$control_pid"
    sleep 0.5
    for n in "${nodes[@]}"; do
      for pid in $(ip netns pids "$(ns "$n")"); do kill -9 "$pid"; done
      ip netns del "$(ns "$n")"
      rm -f "/var/run/wireguard/$(iface "$n").sock"
    done
    for pid in $(ip netns pids "$hub"); do kill -9 "$pid"; done
    wait
  } 2>/dev/null
  ip netns del "$hub" 2>/dev/null
  rm -rf "$work"
  echo "demo: cleaned up (namespaces, processes, interfaces, $work)"
}
trap cleanup EXIT

can_connect() {  # can_connect FROM TO PORT: does a TCP handshake complete?
  in_ns "$1" nc -z -w 2 "$(addr_of "$2")" "$3" >/dev/null 2>&1
}
addr_of() { policyc node status --state "$work/$1.state" --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["addresses"][0])'; }
version_of() { policyc node status --state "$work/$1.state" --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["netmap_version"] or 0)'; }
wait_until() {  # wait_until SECONDS COMMAND...: retry until it succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}
converged() {  # every agent enforces the version control holds for it
  local listing; listing="$(admin control nodes list --json 2>/dev/null)" || return 1
  for n in "${nodes[@]}"; do
    local want; want="$(echo "$listing" | python3 -c \
      "import json,sys; print(next((x['netmap_version'] for x in json.load(sys.stdin)['nodes'] if x['name']=='$n'), ''))")"
    [ -n "$want" ] || return 1  # not registered yet
    [ "$(version_of "$n")" -ge "$want" ] || return 1
  done
}

cat > "$work/policy.hujson" <<'POLICY'
{
  "groups": {"group:dev": ["alice@example.com"]},
  "tagOwners": {"tag:web": ["group:dev"], "tag:db": ["group:dev"]},
  "acls": [
    {"action": "accept", "src": ["group:dev"], "dst": ["tag:web:80,443"]},
    {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]},
  ],
}
POLICY
sed 's/tag:web:80,443/tag:web:80/' "$work/policy.hujson" > "$work/narrower.hujson"
cat > "$work/open.hujson" <<'POLICY'
// What control starts with: the tags exist (auth keys need them), everyone reaches everyone.
{
  "groups": {"group:dev": ["alice@example.com"]},
  "tagOwners": {"tag:web": ["group:dev"], "tag:db": ["group:dev"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}
POLICY

ip netns add "$hub"
ip -n "$hub" link set lo up
ip -n "$hub" link add br0 type bridge
ip -n "$hub" addr add 198.18.0.1/24 dev br0
ip -n "$hub" link set br0 up
i=10
for n in "${nodes[@]}"; do
  ip netns add "$(ns "$n")"
  ip -n "$hub" link add "h$n" type veth peer name eth0 netns "$(ns "$n")"
  ip -n "$hub" link set "h$n" master br0 up
  ip -n "$(ns "$n")" link set lo up
  ip -n "$(ns "$n")" link set eth0 up
  ip -n "$(ns "$n")" addr add "198.18.0.$i/24" dev eth0
  i=$((i + 1))
done

policyc control init --state "$work/control" --policy "$work/open.hujson" \
  >/dev/null 2>"$work/control-init.log"
ip netns exec "$hub" policyc control serve --state "$work/control" \
  --listen 198.18.0.1:8080 >"$work/control.log" 2>&1 &
control_pid=$!
wait_until 30 admin control nodes list >/dev/null 2>&1
say "1. control server up at $control_url (namespace $hub), policy: everyone reaches everyone"

i=10
for n in "${nodes[@]}"; do
  # shellcheck disable=SC2086  # owner holds two words on purpose
  key="$(admin control authkey create ${owner[$n]})"
  ip netns exec "$(ns "$n")" policyc node up --server "$control_url" --auth-key "$key" \
    --iface "$(iface "$n")" --state "$work/$n.state" --listen-port 41641 \
    --endpoint "198.18.0.$i:41641" --hostname "$n" >"$work/$n.log" 2>&1 &
  agent_pid[$n]=$!
  i=$((i + 1))
done
wait_until 60 converged
say "2. three nodes joined with auth keys: $(for n in "${nodes[@]}"; do
  printf '%s=%s ' "$n" "$(addr_of "$n")"; done)"

admin apply "$work/policy.hujson" >"$work/apply.log" 2>&1
wait_until 30 converged
say "3. policy applied: alice may reach web on 80 and 443; web may reach db on 5432"

in_ns web nc -lk 443 >/dev/null 2>&1 &
in_ns web nc -lk 80 >/dev/null 2>&1 &
in_ns db nc -lk 5432 >/dev/null 2>&1 &
sleep 0.5
if wait_until 10 can_connect alice web 443; then
  say "4. allowed: alice -> web:443 connects"
else
  say "4. UNEXPECTED: alice -> web:443 did not connect"; exit 1
fi
if can_connect alice db 5432; then
  say "5. UNEXPECTED: alice -> db:5432 connected"; exit 1
else
  say "5. denied:  alice -> db:5432 is refused (db is not even alice's WireGuard peer)"
fi

admin apply "$work/narrower.hujson" >/dev/null 2>&1
wait_until 30 converged
if can_connect alice web 443; then
  say "6. UNEXPECTED: alice -> web:443 still connects after the narrower policy"; exit 1
else
  say "6. narrower policy pushed: alice -> web:443 is now refused (web:80 still open)"
fi

kill -9 "$control_pid"; wait "$control_pid" 2>/dev/null || true; control_pid=""
if wait_until 10 can_connect alice web 80 && ! can_connect alice web 443; then
  say "7. control stopped (SIGKILL): the mesh still enforces the last policy (web:80 open, 443 refused)"
else
  say "7. UNEXPECTED: the mesh changed when control stopped"; exit 1
fi
