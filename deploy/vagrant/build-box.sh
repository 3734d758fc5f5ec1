#!/usr/bin/env bash
# Builds the Vagrant box the Tessera cluster in this folder boots (libvirt provider), offline from then
# on: a Debian 12 root file system made by debootstrap from the mirror apt already uses, holding what
# tsd needs at run time (so `install.sh --no-packages` needs no network inside the VM), as a qcow2 image.
# The box has no bootloader: vagrant-libvirt boots its kernel directly, so the kernel and initrd are
# written beside libvirt's other boot files, where QEMU (running as libvirt-qemu) may read them.
#
#   sudo bash deploy/vagrant/build-box.sh            builds and adds the box (TESSERA_BOX, default tessera/debian12)
#   options: --out DIR (where the .box file goes; default deploy/vagrant/.box), --no-add (do not `vagrant box add`)
# Needs: debootstrap, e2fsprogs (mkfs.ext4 -d), qemu-utils, vagrant (for its insecure public key and box add).
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
box_name=${TESSERA_BOX:-tessera/debian12}
boot_dir=${TESSERA_BOX_BOOT_DIR:-/var/lib/libvirt/boot}
out_dir=$here/.box
add=yes
while [ $# -gt 0 ]; do
  case $1 in
    --out) out_dir=$(readlink -f "$2"); shift 2 ;;
    --no-add) add=no; shift ;;
    -h | --help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "build-box.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "build-box.sh: run as root (debootstrap and chroot need it)" >&2; exit 1; }
for tool in debootstrap mkfs.ext4 qemu-img; do
  command -v "$tool" >/dev/null || { echo "build-box.sh: $tool is missing (apt-get install debootstrap e2fsprogs qemu-utils)" >&2; exit 1; }
done

# The insecure key Vagrant logs in with the first time (it then puts a key of its own in place).
insecure_key=$(find /usr/share/rubygems-integration /usr/lib/ruby /opt/vagrant -path '*vagrant*/keys/vagrant.pub' 2>/dev/null | head -1 || true)
[ -n "$insecure_key" ] || { echo "build-box.sh: vagrant's keys/vagrant.pub not found (apt-get install vagrant)" >&2; exit 1; }

# The mirror apt already uses (deb822 sources first, then the one-line format).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\)[[:space:]]\+bookworm[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1 || true)
[ -n "$mirror" ] || { echo "build-box.sh: no Debian mirror found in apt's sources" >&2; exit 1; }

# Booting and logging in: systemd, udev, ssh, sudo, the cloud kernel (virtio built for VMs), rsync for
# Vagrant's synced folder. What tsd and install.sh's runtime list need: iproute2 nftables iptables
# util-linux libseccomp2 ca-certificates tini (kmod lets the kernel load veth, bridge, vxlan, overlay).
packages=(systemd systemd-sysv udev dbus kmod openssh-server sudo iproute2 libnss-myhostname rsync procps
  linux-image-cloud-amd64 nftables iptables util-linux libseccomp2 ca-certificates tini)

work=$(mktemp -d /var/tmp/tessera-box.XXXXXX)
cleanup() {
  for m in dev/pts dev proc sys; do mountpoint -q "$work/root/$m" && umount -l "$work/root/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
started=$(date +%s)
echo "build-box.sh: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -30 "$work/debootstrap.log" >&2; exit 1; }
echo "build-box.sh: debootstrap done in $(($(date +%s) - started)) s"

# --- configuration of the guest ---
# Every VM must make its own machine id at first boot, or all of them ask DHCP for the same lease.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# The host name comes from the kernel command line (systemd.hostname=), set per VM by the Vagrantfile.
rm -f "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf '/dev/vda\t/\text4\trw,errors=remount-ro\t0\t1\n' >"$root/etc/fstab"

# Network: eth0 is Vagrant's management network (DHCP); the private address comes from the kernel
# command line (ip=...:eth1:off), which systemd-network-generator turns into a .network file.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/20-management.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4

[DHCPv4]
UseDomains=no
EOF
# Online means the private link is up: the management network may be slow to hand out a lease.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
EOF

# Each VM makes its own ssh host keys at first boot (an image must not carry them).
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/systemd/system/ssh-host-keys.service" <<'EOF'
[Unit]
Description=Generate this machine's ssh host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
EOF
printf 'UseDNS no\nGSSAPIAuthentication no\n' >"$root/etc/ssh/sshd_config.d/vagrant.conf"

# The vagrant user Vagrant logs in as.
chroot "$root" useradd --create-home --shell /bin/bash vagrant
install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$insecure_key" "$root/home/vagrant/.ssh/authorized_keys"
chown 1000:1000 "$root/home/vagrant/.ssh" "$root/home/vagrant/.ssh/authorized_keys"
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' >"$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"
mkdir -p "$root/vagrant" && chown 1000:1000 "$root/vagrant"

chroot "$root" systemctl enable systemd-networkd systemd-network-generator ssh-host-keys ssh >/dev/null 2>&1
# Timers that would wake a slow emulated VM for nothing.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
# The VMs reach no mirror: keep no package lists or archives.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log

kernel=$(find "$root/boot" -name 'vmlinuz-*' | sort | tail -1)
initrd=$(find "$root/boot" -name 'initrd.img-*' | sort | tail -1)
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "build-box.sh: no kernel or initrd in the root file system" >&2; exit 1; }
slug=${box_name//\//-}
install -d -m 755 "$boot_dir"
install -m 644 "$kernel" "$boot_dir/$slug-vmlinuz"
install -m 644 "$initrd" "$boot_dir/$slug-initrd"

# --- the image and the box ---
for m in dev/pts dev proc sys; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
disk_gib=8
mkfs.ext4 -q -L root -d "$root" "$work/root.raw" "${disk_gib}G"
box_dir=$work/box
mkdir -p "$box_dir"
qemu-img convert -O qcow2 "$work/root.raw" "$box_dir/box.img"
rm -f "$work/root.raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$disk_gib" >"$box_dir/metadata.json"
cat >"$box_dir/Vagrantfile" <<EOF
# Tessera's Debian 12 box: no bootloader; boot its kernel directly (see deploy/vagrant/build-box.sh).
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = "$boot_dir/$slug-vmlinuz"
    libvirt.initrd = "$boot_dir/$slug-initrd"
    libvirt.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
  end
end
EOF
mkdir -p "$out_dir"
box_file=$out_dir/$slug.box
tar -C "$box_dir" -cf "$box_file.tmp" metadata.json Vagrantfile box.img
mv "$box_file.tmp" "$box_file"
echo "build-box.sh: $box_file ($(du -h "$box_file" | cut -f1)), kernel and initrd in $boot_dir, in $(($(date +%s) - started)) s"

if [ "$add" = yes ]; then
  vagrant box add --force --name "$box_name" "$box_file" >/dev/null
  # vagrant-libvirt uploads a box into libvirt's pool once and reuses that volume: drop a stale one.
  if virsh -c qemu:///system version >/dev/null 2>&1; then
    for vol in $(virsh -c qemu:///system vol-list default 2>/dev/null | awk -v p="${box_name//\//-VAGRANTSLASH-}_vagrant_box_image" 'index($1, p) == 1 {print $1}'); do
      virsh -c qemu:///system vol-delete --pool default "$vol" >/dev/null
    done
  fi
  echo "build-box.sh: added box $box_name"
fi
