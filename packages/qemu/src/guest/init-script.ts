/** Kernel modules the Debian kernel needs for virtio-net, in insmod order (dependencies first). */
export const GUEST_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
] as const

/** Printed on the serial console once redis answers PING inside the guest. */
export const GUEST_READY_MARKER = 'PLOVER-GUEST-READY'
/** Printed when redis-server exits inside the guest (the guest then powers off). */
export const GUEST_REDIS_EXITED_MARKER = 'PLOVER-GUEST-REDIS-EXITED'
/** Port redis listens on inside the guest. */
export const GUEST_REDIS_PORT = 6379

/**
 * redis.conf inside the guest: a pure in-memory server reachable from the test network.
 * WHY enable-debug-command: redis 7 refuses DEBUG by default, and tests compare primary and backup
 * with `DEBUG DIGEST` (the refusal is the same error on both sides, which would compare equal).
 */
export const GUEST_REDIS_CONF = `bind 0.0.0.0
port ${GUEST_REDIS_PORT}
protected-mode no
daemonize no
save ""
appendonly no
dir /tmp
loglevel warning
logfile /tmp/redis.log
enable-debug-command yes
`

/**
 * The guest's /init (busybox sh). Reads its network settings from the kernel command line:
 *   plover.ip=A.B.C.D/NN   static address of eth0 (absent: eth0 is brought up without an address)
 *   plover.gw=A.B.C.D      default gateway (optional)
 *   plover.sysctl.K=V      \`sysctl -w K=V\` before redis starts (e.g. plover.sysctl.net.ipv4.tcp_timestamps=0)
 *   plover.redis.N=V       passed to redis-server as \`--N V\` (e.g. plover.redis.hz=1)
 * WHY a shell script and no init system: boot time under TCG is dominated by what runs, and this
 * is the least that gives a reachable redis.
 */
export function guestInitScript(): string {
  const modules = GUEST_MODULES.join(' ')
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo 1 > /proc/sys/vm/overcommit_memory
for m in ${modules}; do
  insmod /lib/modules/plover/$m.ko || echo "plover-init: insmod $m failed"
done
ip link set lo up
ip=""; gw=""; redis_args=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    plover.ip=*) ip="\${arg#plover.ip=}" ;;
    plover.gw=*) gw="\${arg#plover.gw=}" ;;
    plover.sysctl.*=*) kv="\${arg#plover.sysctl.}"; sysctl -w "$kv" >/dev/null || echo "plover-init: sysctl $kv failed" ;;
    plover.redis.*=*) kv="\${arg#plover.redis.}"; redis_args="$redis_args --\${kv%%=*} \${kv#*=}" ;;
  esac
done
if ip link show eth0 >/dev/null 2>&1; then
  [ -n "$ip" ] && ip addr add "$ip" dev eth0
  ip link set eth0 up
  [ -n "$gw" ] && ip route add default via "$gw"
else
  echo "plover-init: no eth0"
fi
/usr/bin/redis-server /etc/redis.conf $redis_args &
redis_pid=$!
while ! printf 'PING\\r\\n' | timeout 2 nc 127.0.0.1 ${GUEST_REDIS_PORT} 2>/dev/null | grep -q PONG; do
  if ! kill -0 $redis_pid 2>/dev/null; then break; fi
  usleep 100000
done
if kill -0 $redis_pid 2>/dev/null; then
  echo "${GUEST_READY_MARKER} ip=\${ip:-none}" > /dev/console
fi
wait $redis_pid
echo "${GUEST_REDIS_EXITED_MARKER}" > /dev/console
cat /tmp/redis.log > /dev/console 2>/dev/null
poweroff -f
`
}
