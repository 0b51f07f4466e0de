/**
 * USER_HZ, the unit of utime/stime in /proc/PID/stat (`getconf CLK_TCK`).
 *
 * WHY a constant: Node cannot call sysconf(_SC_CLK_TCK) and the brief forbids shelling out in the
 * sampling path. The value is part of the Linux user ABI, fixed at 100 on x86, x86-64 and arm64
 * whatever the kernel's internal HZ; the test suite checks it against `getconf CLK_TCK` and
 * against process.cpuUsage(). Probes accept an override for exotic architectures.
 */
export const LINUX_CLK_TCK = 100
