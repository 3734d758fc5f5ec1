#!/usr/bin/env bash
# Runs as root inside each VM of deploy/vagrant (Vagrant's shell provisioner):
#   provision.sh NAME ADDRESS FIRST_MANAGER ROLE
# Installs the release from the synced folder offline, writes /etc/tessera/tsd.yaml, starts tsd with
# systemd and waits until this node is in the cluster. The first node (FIRST_MANAGER empty) starts the
# cluster; the others join with the token the host put in /vagrant/join-token.NAME (0600), which is
# moved out of the synced folder at once and shredded once the node has joined.
set -euo pipefail
name=$1 address=$2 first_manager=$3 role=$4
shared=/vagrant
token=/root/tessera-join.token
started=$(date +%s)
say() { echo "[$name +$(($(date +%s) - started))s] $*"; }

if [ -n "$first_manager" ]; then
  [ -f "$shared/join-token.$name" ] || { echo "provision.sh: no join token in $shared/join-token.$name" >&2; exit 1; }
  install -m 600 "$shared/join-token.$name" "$token"
  shred -u "$shared/join-token.$name" 2>/dev/null || rm -f "$shared/join-token.$name"
fi

# The settings first: install.sh then keeps them (and skips writing its commented example).
install -d -m 755 /etc/tessera
{
  echo "# Written by deploy/vagrant/provision.sh."
  echo "node-name: $name"
  echo "advertise-address: $address"
  if [ -n "$first_manager" ]; then
    echo "join: $first_manager"
    echo "token-file: $token"
  fi
} >/etc/tessera/tsd.yaml
chmod 644 /etc/tessera/tsd.yaml

# Install (or upgrade to) the release in the synced folder, with no packages: the box has them.
release_dir=$(mktemp -d)
trap 'rm -rf "$release_dir"' EXIT
tar -C "$release_dir" -xzf "$shared/tessera.tar.gz"
bash "$release_dir"/tessera-*/deploy/install.sh --no-packages >/dev/null
say "installed Tessera $(cat /usr/local/lib/tessera/RELEASE)"

systemctl enable --now tsd.service >/dev/null 2>&1

# Waits for a condition, failing with tsd's journal when tsd has failed or time runs out.
wait_for() { # description, seconds, command...
  local what=$1 seconds=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if systemctl is-failed --quiet tsd.service || [ "$(date +%s)" -ge "$deadline" ]; then
      echo "provision.sh: $name: $what did not happen; tsd's journal:" >&2
      journalctl -u tsd.service --no-pager -n 40 >&2 || true
      exit 1
    fi
    sleep 1
  done
}

if [ -z "$first_manager" ]; then
  node_ready() { tsctl node ls | grep -E "^$name[[:space:]].*[[:space:]]ready([[:space:]]|$)"; }
  wait_for "node $name ready" 240 node_ready
  say "cluster started; this node is its first manager"
else
  joined() { journalctl -u tsd.service -o cat --no-pager | grep -q "^Joined the cluster at $first_manager"; }
  wait_for "joining $first_manager" 240 joined
  shred -u "$token"
  say "joined $first_manager as a $role; token removed"
fi
