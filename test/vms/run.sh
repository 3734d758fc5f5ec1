#!/usr/bin/env bash
# `npm run test:vms`: boots a real 3-VM Tessera cluster with deploy/vagrant's Vagrantfile and box
# (built by deploy/vagrant/build-box.sh when missing), deploys examples/hello and a Compose stack over
# the overlay, checks the published ports on every VM, kills a VM hard, restarts tsd under systemd,
# reboots a VM, then destroys everything it made. Prints each step's time.
#
# Network: the VMs' addresses are private-range ones, so all of it stays inside a network namespace
# this script creates: libvirtd (hence QEMU and dnsmasq), vagrant and ssh run there, and the
# namespace is deleted at the end. Both libvirt networks are isolated; nothing has a route out.
# As root, on a host where no libvirtd runs yet (this starts its own). Takes several minutes under
# QEMU TCG. Settings: TESSERA_VM_KEEP=1 leaves the VMs up on failure (for a look; clean up with
# TESSERA_VM_CLEANUP_ONLY=1 npm run test:vms).
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
vagrant_dir=$repo/deploy/vagrant
ns=tessera-vms
work=$(mktemp -d /var/tmp/tessera-test-vms.XXXXXX)
timings=$work/timings
# One manager and two workers by default (TESSERA_VM_MANAGERS=3 for three managers): under QEMU TCG
# on a 2-core host, three Raft members on 1-vCPU VMs spend most of their time electing.
export TESSERA_NODES=3 TESSERA_MANAGERS=${TESSERA_VM_MANAGERS:-1}
export TESSERA_BOX=${TESSERA_BOX:-tessera/debian12}
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1 VAGRANT_NO_COLOR=1
subnet=${TESSERA_VM_SUBNET:-192.168.57}
addresses=("$subnet.11" "$subnet.12" "$subnet.13")
libvirt_uri=qemu:///system
# Set when this test defined libvirt's pool `default` (kept across a TESSERA_VM_KEEP run for the clean-up).
pool_marker=$vagrant_dir/.vagrant/test-vms-defined-pool
test_started=$(date +%s)

[ "$(id -u)" = 0 ] || { echo "test:vms: run as root" >&2; exit 1; }
for tool in vagrant virsh libvirtd virtlogd qemu-system-x86_64 curl ssh; do
  command -v "$tool" >/dev/null || { echo "test:vms: $tool is missing (apt-get install vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86 qemu-utils debootstrap)" >&2; exit 1; }
done

log() { echo "[test:vms +$(($(date +%s) - test_started))s] $*"; }
in_ns() { ip netns exec "$ns" "$@"; }
vagrant_ns() { (cd "$vagrant_dir" && in_ns vagrant "$@"); }
vm() { # node, command...: a command in a VM over ssh, inside the namespace
  local node=$1
  shift
  in_ns ssh -F "$work/ssh_config" -o ConnectTimeout=10 "$node" "$@"
}

# --- set-up and tear-down of what the test owns ---
# As the Vagrantfile decides: KVM when /dev/kvm is there and the CPU has virtualisation extensions.
kvm_usable() {
  case ${TESSERA_VM_ACCEL:-} in kvm) return 0 ;; tcg) return 1 ;; esac
  [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo
}
libvirtd_started=no
start_libvirt() {
  if [ -S /run/libvirt/libvirt-sock ] && virsh -c "$libvirt_uri" version >/dev/null 2>&1; then
    echo "test:vms: a libvirtd is already running on this host; this test starts its own inside a network namespace" >&2
    exit 1
  fi
  ip netns add "$ns"
  in_ns ip link set lo up
  # libvirtd runs in a mount namespace of its own, where (1) the autostart folders are empty, so it
  # starts none of the host's networks (libvirt's default NAT network) or domains; (2) without usable
  # KVM, /dev/kvm is hidden: a /dev/kvm that exists but cannot run a VM (no nested virtualisation)
  # makes libvirt 9 think its QEMU capabilities are stale and probe QEMU again on every call, and
  # then QEMU gets no private /dev (which would try to carry the hidden node along).
  local conf=$work/qemu.conf no_kvm=$work/no-kvm
  cp /etc/libvirt/qemu.conf "$conf"
  : >"$no_kvm" && chmod 000 "$no_kvm"
  local hide_kvm=
  if ! kvm_usable && [ -e /dev/kvm ]; then
    echo 'namespaces = []' >>"$conf"
    hide_kvm="mount --bind $no_kvm /dev/kvm"
  fi
  in_ns virtlogd -d -p "$work/virtlogd.pid"
  in_ns unshare --mount --propagation private sh -c "
    for d in /etc/libvirt/qemu/networks/autostart /etc/libvirt/qemu/autostart; do [ -d \$d ] && mount -t tmpfs tmpfs \$d; done
    mount --bind $conf /etc/libvirt/qemu.conf
    $hide_kvm
    exec libvirtd -d -p $work/libvirtd.pid"
  libvirtd_started=yes
  for _ in $(seq 1 60); do virsh -c "$libvirt_uri" version >/dev/null 2>&1 && break; sleep 0.5; done
  virsh -c "$libvirt_uri" version >/dev/null
  if ! virsh -c "$libvirt_uri" pool-info default >/dev/null 2>&1; then
    virsh -c "$libvirt_uri" pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    mkdir -p "$vagrant_dir/.vagrant" && touch "$pool_marker"
  fi
  local pool_info
  pool_info=$(virsh -c "$libvirt_uri" pool-info default)
  [[ $pool_info == *running* ]] || virsh -c "$libvirt_uri" pool-start default >/dev/null
}

# On failure: each reachable VM's tsd journal (this boot and the one before), tasks, addresses,
# routes and nftables rules, into $work/diag-NODE.txt (the VMs are destroyed next).
collect_diagnostics() {
  local node
  for node in node1 node2 node3; do
    timeout 60 ip netns exec "$ns" ssh -F "$work/ssh_config" -o ConnectTimeout=5 "$node" sudo sh -c "'
      echo \"== tsctl get tasks\"; tsctl get tasks 2>&1
      echo \"== ip -br addr; ip route\"; ip -br addr; ip route
      echo \"== nft list ruleset\"; nft list ruleset
      echo \"== journalctl -u tsd (previous boot, last 150)\"; journalctl -u tsd -b -1 --no-pager -n 150 2>&1
      echo \"== journalctl -u tsd (this boot, last 400)\"; journalctl -u tsd -b 0 --no-pager -n 400'" >"$work/diag-$node.txt" 2>&1 ||
      echo "(collecting from $node failed or timed out)" >>"$work/diag-$node.txt"
  done
  log "diagnostics of each VM in $work/diag-node{1,2,3}.txt"
}

cleanup() {
  local status=$?
  set +e
  if [ "$status" != 0 ] && [ "${TESSERA_VM_KEEP:-}" = 1 ]; then
    log "failed; VMs kept (TESSERA_VM_KEEP=1). Logs: $work. Clean up with TESSERA_VM_CLEANUP_ONLY=1 npm run test:vms"
    exit "$status"
  fi
  [ "$status" != 0 ] && [ -f "$work/ssh_config" ] && collect_diagnostics
  log "cleaning up"
  local cleanup_started
  cleanup_started=$(date +%s)
  if [ "$libvirtd_started" = yes ] || virsh -c "$libvirt_uri" version >/dev/null 2>&1; then
    (cd "$vagrant_dir" && timeout 300 ip netns exec "$ns" vagrant destroy -f) >>"$work/destroy.log" 2>&1
    for domain in $(virsh -c "$libvirt_uri" list --all --name 2>/dev/null | grep '^vagrant_node'); do
      virsh -c "$libvirt_uri" destroy "$domain" >/dev/null 2>&1
      virsh -c "$libvirt_uri" undefine "$domain" --nvram >/dev/null 2>&1 || virsh -c "$libvirt_uri" undefine "$domain" >/dev/null 2>&1
    done
    for net in tessera-management tessera-private; do
      virsh -c "$libvirt_uri" net-destroy "$net" >/dev/null 2>&1
      virsh -c "$libvirt_uri" net-undefine "$net" >/dev/null 2>&1
    done
    local box_volume=${TESSERA_BOX//\//-VAGRANTSLASH-}_vagrant_box_image
    for vol in $(virsh -c "$libvirt_uri" vol-list default 2>/dev/null | awk 'NR > 2 {print $1}' | grep -E "^(vagrant_node|$box_volume)"); do
      virsh -c "$libvirt_uri" vol-delete --pool default "$vol" >/dev/null 2>&1
    done
    if [ -f "$pool_marker" ]; then
      virsh -c "$libvirt_uri" pool-destroy default >/dev/null 2>&1
      virsh -c "$libvirt_uri" pool-undefine default >/dev/null 2>&1 && rm -f "$pool_marker"
    fi
  fi
  for daemon in libvirtd virtlogd; do
    [ -f "$work/$daemon.pid" ] && kill "$(cat "$work/$daemon.pid")" 2>/dev/null
  done
  sleep 1
  ip netns del "$ns" 2>/dev/null
  rm -f "$vagrant_dir"/.shared/join-token.* "$vagrant_dir/.shared/hello-image.tar" "$vagrant_dir/.shared/compose.yaml"
  rm -rf "$vagrant_dir/.vagrant/machines"
  printf '  %-58s %5d\n' "destroy VMs, networks, volumes, namespace, daemons" "$(($(date +%s) - cleanup_started))" >>"$timings"
  if [ -s "$timings" ]; then
    echo
    echo "test:vms step timings (seconds):"
    cat "$timings"
    printf '  %-58s %5d\n' "total" "$(($(date +%s) - test_started))"
  fi
  if [ "$status" = 0 ]; then rm -rf "$work"; else log "FAILED (status $status); logs in $work"; fi
  exit "$status"
}

if [ "${TESSERA_VM_CLEANUP_ONLY:-}" = 1 ]; then
  # A run left VMs behind (TESSERA_VM_KEEP): its libvirtd is still up in the namespace.
  libvirtd_started=yes
  for pid in $(pgrep -x libvirtd) $(pgrep -x virtlogd); do
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ] && echo "$pid" >"$work/$(cat "/proc/$pid/comm").pid"
  done
  trap cleanup EXIT
  exit 0
fi
trap cleanup EXIT

step_name= step_started=
step() { # name: starts a timed step (the previous one ends)
  end_step
  step_name=$1 step_started=$(date +%s)
  log "== $1"
}
end_step() {
  [ -n "$step_name" ] && printf '  %-58s %5d\n' "$step_name" "$(($(date +%s) - step_started))" >>"$timings"
  step_name=
}
# Retries a check until it passes or time runs out: seconds, description, command...
eventually() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@" >"$work/last-check.out" 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "test:vms: $what: not after ${seconds}s; last output:" >&2
      cat "$work/last-check.out" >&2
      return 1
    fi
    sleep 2
  done
}

# --- checks ---
nodes_table() { vm "${1:-node1}" sudo tsctl node ls; }
node_not_ready() { # manager, node
  local state
  state=$(nodes_table "$1" | awk -v n="$2" '$1 == n {print $3}') || return 1
  echo "$2: $state"
  [ -n "$state" ] && [ "$state" != ready ]
}
all_ready() { # manager, node...
  local manager=$1
  shift
  local table
  table=$(nodes_table "$manager") || return 1
  echo "$table"
  for n in "$@"; do echo "$table" | awk -v n="$n" '$1 == n && $3 == "ready" {found=1} END {exit !found}' || return 1; done
}
tasks_table() { vm "${1:-node1}" sudo tsctl get tasks; }
# Running tasks of a service, excluding a node: manager, service, count, excluded node (optional)
running_tasks() {
  local table
  table=$(tasks_table "$1") || return 1
  echo "$table"
  local count
  count=$(echo "$table" | awk -v s="$2" -v x="${4:-}" '$2 == s && $6 == "running" && $4 != x' | wc -l)
  [ "$count" -ge "$3" ]
}
port_answers() { # address, port, text
  local page
  page=$(in_ns curl -sf --max-time 5 "http://$1:$2/") || return 1
  echo "$1:$2 $page"
  [[ $page == *"$3"* ]]
}
ports_answer() { # port, text, addresses...
  local port=$1 text=$2
  shift 2
  for a in "$@"; do port_answers "$a" "$port" "$text" || return 1; done
}
# What the store says runs on a node does run there: as many running tasks as httpd processes.
node_reconciled() { # manager, node
  local in_store on_node
  in_store=$(tasks_table "$1" | awk -v n="$2" '$4 == n && $6 == "running"' | wc -l) || return 1
  local pids
  # pgrep exits 1 when nothing matches, which is an answer here; ssh failing (255) is not.
  pids=$(vm "$2" 'pgrep -x httpd; [ $? -le 1 ]') || return 1
  on_node=$(printf '%s' "$pids" | grep -c . || true)
  echo "$2: $in_store running tasks in the store, $on_node httpd processes"
  [ "$in_store" = "$on_node" ]
}
# No task was refused for its image: the VMs have no registry, so every node must have got the
# image loaded on node1 from its peers at the first try. Prints the full messages of any that was.
no_image_rejections() { # manager
  local json
  json=$(vm "$1" sudo tsctl get tasks -o json) || return 1
  printf '%s' "$json" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
tasks = doc if isinstance(doc, list) else doc.get("items", [])
bad = [t for t in tasks if t["status"]["state"] == "rejected" and t["status"].get("message", "").startswith("image ")]
for t in bad:
    print(t["metadata"]["name"], t.get("nodeName", "-"), t["status"]["message"])
sys.exit(1 if bad else 0)
'
}
node_has_running() { # manager, node
  tasks_table "$1" | awk -v n="$2" '$4 == n && $6 == "running" {found=1} END {exit !found}'
}
# Every VM holds the image loaded on node1 alone: its NODES column (tsctl image ls on the leader;
# a follower knows only its own node, so every manager is asked and one must name all three).
image_on_every_node() {
  local m table
  for m in node1 node2 node3; do
    table=$(vm "$m" sudo tsctl image ls) || continue
    echo "$table"
    echo "$table" | awk '/busybox/ && /node1/ && /node2/ && /node3/ {found=1} END {exit !found}' && return 0
  done
  return 1
}
# tsctl top on a manager lists running hello tasks on every node (its NODE column).
top_covers_every_node() {
  local table
  table=$(vm "$1" sudo tsctl top hello) || return 1
  echo "$table"
  for n in node1 node2 node3; do echo "$table" | awk -v n="$n" '$2 == n {found=1} END {exit !found}' || return 1; done
}
ssh_up() { vm "$1" true; }
refresh_ssh_config() { vagrant_ns ssh-config >"$work/ssh_config" 2>>"$work/vagrant.log"; }

# --- the steps ---
step "package the release (npm run package)"
release=$(bash "$repo/deploy/package.sh" "$work/release" | tail -1)
export TESSERA_RELEASE=$release
log "release: $release ($(du -h "$release" | cut -f1))"

slug=${TESSERA_BOX//\//-}
if ! vagrant box list 2>/dev/null | grep "^$TESSERA_BOX " >/dev/null || [ ! -f "/var/lib/libvirt/boot/$slug-vmlinuz" ] || [ "${TESSERA_REBUILD_BOX:-}" = 1 ]; then
  step "build the box (deploy/vagrant/build-box.sh)"
  bash "$vagrant_dir/build-box.sh" >"$work/build-box.log" 2>&1 || { cat "$work/build-box.log" >&2; exit 1; }
fi

step "network namespace, virtlogd and libvirtd"
start_libvirt

step "example image (dist/deploy/build-example-image.js)"
mkdir -p "$vagrant_dir/.shared"
release_tree=$work/release-tree
mkdir -p "$release_tree" && tar -C "$release_tree" -xzf "$release"
"$release_tree"/*/node/bin/node "$release_tree"/*/dist/deploy/build-example-image.js "$vagrant_dir/.shared/hello-image.tar" >/dev/null
cp "$repo/test/vms/compose.yaml" "$vagrant_dir/.shared/compose.yaml"

step "vagrant up (3 VMs, $TESSERA_MANAGERS manager(s))"
vagrant_ns up >"$work/vagrant.log" 2>&1 || { tail -60 "$work/vagrant.log" >&2; exit 1; }
grep -E '^\s*node[0-9]: \[node[0-9] \+' "$work/vagrant.log" || true
refresh_ssh_config

step "every node ready (tsctl node ls on node1)"
eventually 120 "three nodes ready" all_ready node1 node1 node2 node3
nodes_table node1

step "load the example image on node1 only (the others fetch it from their peers)"
vm node1 sudo tsctl image load /vagrant/hello-image.tar

step "deploy examples/hello and the Compose stack"
vm node1 sudo tsctl apply --detach -f /usr/local/lib/tessera/examples/hello/stack.yaml
vm node1 sudo tsctl stack deploy --detach -c /vagrant/compose.yaml overlay
eventually 240 "3 hello tasks running" running_tasks node1 hello 3
eventually 240 "front and back running" running_tasks node1 front 1
tasks_table node1
no_image_rejections node1 || { echo "test:vms: a node was refused the image it should have got from its peers (above)" >&2; exit 1; }

step "the image reached every node; top sees every node's tasks"
eventually 120 "image ls names node1, node2 and node3" image_on_every_node node1
eventually 60 "top shows hello tasks on node1, node2 and node3" top_covers_every_node node1

step "published ports answer on every VM"
eventually 120 "hello on 8080 everywhere" ports_answer 8080 "hello from" "${addresses[@]}"
eventually 120 "front <- back over the overlay, on 8081 everywhere" ports_answer 8081 "front <- back on" "${addresses[@]}"

step "kill node3 hard (virsh destroy); its tasks move"
virsh -c "$libvirt_uri" destroy vagrant_node3 >/dev/null
eventually 180 "node3 seen down" node_not_ready node1 node3
eventually 240 "3 hello tasks running off node3" running_tasks node1 hello 3 node3
eventually 120 "hello on 8080 on node1 and node2" ports_answer 8080 "hello from" "${addresses[0]}" "${addresses[1]}"
eventually 60 "front on 8081 on node1 and node2" ports_answer 8081 "front <- back on" "${addresses[0]}" "${addresses[1]}"
tasks_table node1

step "node3 boots again (vagrant up node3) and is ready"
vagrant_ns up node3 >>"$work/vagrant.log" 2>&1 || { tail -40 "$work/vagrant.log" >&2; exit 1; }
refresh_ssh_config
eventually 240 "node3 ready again" all_ready node1 node1 node2 node3
# Six replicas: the new ones go to node3, which has none since the kill, so the reboot below has tasks to reconcile.
vm node1 sudo tsctl scale hello=6
eventually 240 "hello running on node3 again" node_has_running node1 node3
eventually 120 "hello on 8080 on node3 after its boot" port_answers "${addresses[2]}" 8080 "hello from"

step "restart tsd under systemd on node2; its containers keep running"
before=$(vm node2 "pgrep -x httpd | sort | tr '\n' ' '")
[ -n "$before" ] || { echo "test:vms: no httpd container on node2" >&2; exit 1; }
vm node2 sudo systemctl restart tsd
eventually 120 "tsd active on node2" vm node2 systemctl is-active --quiet tsd
after=$(vm node2 "pgrep -x httpd | sort | tr '\n' ' '")
log "httpd pids on node2 before: $before after: $after"
for pid in $before; do
  case " $after " in *" $pid "*) ;; *) echo "test:vms: container process $pid on node2 did not survive the tsd restart" >&2; exit 1 ;; esac
done
eventually 120 "node2 ready after the restart" all_ready node1 node2
eventually 60 "hello on 8080 on node2" ports_answer 8080 "hello from" "${addresses[1]}"

step "reboot node3; it comes back ready and reconciled"
vm node3 sudo systemctl reboot || true # the connection drops as the VM goes down
sleep 5
eventually 300 "ssh to node3 after the reboot" ssh_up node3
eventually 240 "node3 ready after the reboot" all_ready node1 node3
# Reconciled: whatever the store says runs on node3 does run there, and every service is at its count.
eventually 180 "6 hello tasks running" running_tasks node1 hello 6
eventually 120 "hello and front answer on every VM" ports_answer 8080 "hello from" "${addresses[@]}"
eventually 120 "front on 8081 everywhere" ports_answer 8081 "front <- back on" "${addresses[@]}"
# A reboot under QEMU TCG outlasts node-down-after, so node3's tasks were replaced elsewhere: it
# must come back with none of theirs running, then take new work (nothing rebalances by itself).
eventually 180 "node3's running tasks and its httpd containers agree" node_reconciled node1 node3
vm node1 sudo tsctl scale hello=9
eventually 240 "hello running on node3 after the reboot" node_has_running node1 node3
eventually 180 "node3's running tasks and its httpd containers agree, with tasks" node_reconciled node1 node3
tasks_table node1

end_step
log "passed; destroying what the test made"
