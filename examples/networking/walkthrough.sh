#!/usr/bin/env bash
# Container networking with minict, one step at a time: the bridge, the veth
# pair, NAT on the way out, a published port on the way in, names on a network
# of your own. Each step shows what is there and checks it ("check: ...").
# Read README.md alongside. Run as root: sudo ./walkthrough.sh
# Set EXPLAIN=0 to hide the --explain narration.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lesson.sh"
CLIENT=minict-lesson-client      # a second "machine": a network namespace of its own

fetch() {  # fetch URL: the page, or nothing after 10 seconds
    timeout 10 busybox wget -q -O - "$1" 2>/dev/null
}
tidy() {  # what the lesson made (also what an interrupted earlier run left)
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    "$MINICT" rm -f lesson-web lesson-db >/dev/null 2>&1
    "$MINICT" network rm lesson-net >/dev/null 2>&1
    ip netns del "$CLIENT" 2>/dev/null     # (its end of the veth goes with it, and so the pair)
    [ -n "${work:-}" ] && rm -rf "$work"
}
tidy
trap tidy EXIT
work=$(mktemp -d)

ensure_busybox_image

step "1. The bridge: every container on the default network plugs into minict0"
inside=$("$MINICT" run --rm busybox sh -c 'ip -4 -o addr show eth0; ip route')
echo "$inside"
ip -br addr show minict0
address=$(echo "$inside" | awk '$2 == "eth0" && $3 == "inet" {print $4}' | cut -d/ -f1)
check "the container has an address on the bridge's subnet" "10.88" "$(echo "$address" | cut -d. -f1-2)"
check "its default route is the bridge's own address" "default via 10.88.0.1 dev eth0" \
      "$(echo "$inside" | grep ^default | cut -d' ' -f1-5)"
check "the bridge is a bridge" "bridge" "$(ip -d link show minict0 | grep -o -m1 '^ *bridge' | tr -d ' ')"
NARRATION='RTM_NEWLINK|RTM_NEWADDR|RTM_NEWROUTE'
explain run --rm busybox true

step "2. The veth pair: a virtual cable, one end (eth0) inside, the other on the bridge"
mkdir -p "$work/www"
echo "hello from the container" > "$work/www/index.html"
"$MINICT" run -d --name lesson-web -p 8080:80 -v "$work/www:/www:ro" busybox httpd -f -p 80 -h /www >/dev/null
id=$("$MINICT" inspect lesson-web | sed -n 's/^ *"Id": "\(.*\)",/\1/p' | head -1)
veth=vh${id:0:12}
ip -br link show master minict0
peer=$("$MINICT" exec lesson-web cat /sys/class/net/eth0/iflink)
check "the host's end of lesson-web's pair is on the bridge" "$veth" \
      "$(ip -o link show master minict0 | grep -o "$veth" | head -1)"
check "the container's eth0 is joined to that host end (eth0's iflink is its index)" \
      "$(ip -o link show "$veth" | cut -d: -f1)" "$peer"

step "3. A second machine: the client, a network namespace wired to the host by its own veth"
ip netns add "$CLIENT"
ip link add lesson-host type veth peer name lesson-client netns "$CLIENT"
ip addr add 10.99.0.1/24 dev lesson-host && ip link set lesson-host up
ip netns exec "$CLIENT" ip addr add 10.99.0.2/24 dev lesson-client
ip netns exec "$CLIENT" ip link set lesson-client up
ip netns exec "$CLIENT" ip link set lo up
ip netns exec "$CLIENT" ip -br addr

step "4. NAT on the way out: a container's packets leave with the host's address"
mkdir -p "$work/who/cgi-bin"
printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%%s\\n" "$REMOTE_ADDR"\n' > "$work/who/cgi-bin/who"
chmod +x "$work/who/cgi-bin/who"
ip netns exec "$CLIENT" busybox httpd -f -p 10.99.0.2:8000 -h "$work/who" &
server=$!
sleep 0.5
iptables -t nat -S MINICT-POSTROUTING | grep MASQUERADE
seen=$("$MINICT" run --rm busybox sh -c 'timeout 10 wget -q -O - http://10.99.0.2:8000/cgi-bin/who')
echo "the client's server saw the container's request come from: $seen"
check "the server sees the host's address, not the container's" "10.99.0.1" "$seen"

step "5. A published port on the way in: -p 8080:80 is a DNAT rule"
"$MINICT" port lesson-web
iptables -t nat -S MINICT-DNAT | grep -- "--dport 8080"
check "from the host's own loopback" "hello from the container" "$(fetch http://127.0.0.1:8080/)"
check "from the client machine, through the host's address" "hello from the container" \
      "$(ip netns exec "$CLIENT" timeout 10 busybox wget -q -O - http://10.99.0.1:8080/ 2>/dev/null)"
check "route_localnet is on for the bridge only (CVE-2020-8558)" "1 0" \
      "$(cat /proc/sys/net/ipv4/conf/minict0/route_localnet) $(cat /proc/sys/net/ipv4/conf/all/route_localnet)"
NARRATION='DNAT|MASQUERADE|route_localnet'
explain run --rm -p 8081:80 busybox true

step "6. A network of your own: containers find each other by name"
"$MINICT" network create lesson-net >/dev/null
"$MINICT" network ls
"$MINICT" run -d --name lesson-db --network lesson-net busybox sleep 600 >/dev/null
"$MINICT" run --rm --network lesson-net busybox sh -c 'grep lesson-db /etc/hosts; ping -c 1 -W 5 lesson-db | head -2'
check "a container reaches lesson-db by its name" "0" \
      "$("$MINICT" run --rm --network lesson-net busybox sh -c 'ping -c 1 -W 5 lesson-db >/dev/null; echo $?')"
check "... but not from the default network" "1" \
      "$("$MINICT" run --rm busybox sh -c 'ping -c 1 -W 2 lesson-db >/dev/null 2>&1; echo $?')"

step "7. Taking it down: rm removes the veth, the rules and the address"
"$MINICT" rm -f lesson-web lesson-db >/dev/null
"$MINICT" network rm lesson-net >/dev/null
check "no veth of lesson-web is left" "" "$(ip -o link show "$veth" 2>/dev/null)"
check "no rule of lesson-web is left" "0" "$(iptables-save | grep -c "minict:$id")"
check "lesson-net's bridge is gone" "" "$(ip -o link show mct-lesson-net 2>/dev/null)"

all_checks_passed
