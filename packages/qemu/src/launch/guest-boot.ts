import type { GuestImage } from '../guest/guest-image.js'
import type { BootConfig } from './vm-config.js'

export interface GuestNetworkSettings {
  /** eth0 address with prefix, e.g. `10.77.0.10/24` (user networking: `10.0.2.15/24`). */
  readonly ip?: string
  /** Default gateway (user networking: `10.0.2.2`). */
  readonly gateway?: string
  /** More kernel parameters. */
  readonly extra?: string
}

/**
 * Kernel command line for the Plover guest: serial console on ttyS0 (where the ready marker
 * appears), `panic=-1` + QEMU's `-no-reboot` so a guest crash becomes a QEMU exit.
 */
export function guestKernelAppend(settings: GuestNetworkSettings = {}): string {
  const parts = ['console=ttyS0', 'panic=-1', 'loglevel=4']
  if (settings.ip) parts.push(`plover.ip=${settings.ip}`)
  if (settings.gateway) parts.push(`plover.gw=${settings.gateway}`)
  if (settings.extra) parts.push(settings.extra)
  return parts.join(' ')
}

/** BootConfig for a built guest image. */
export function guestBoot(image: GuestImage, settings: GuestNetworkSettings = {}): BootConfig {
  return { kernel: image.kernel, initrd: image.initrd, append: guestKernelAppend(settings) }
}
