/** Decoded QMP messages (the `kind` tag is ours; the rest mirrors QEMU's JSON). */
export interface QmpGreeting {
  readonly kind: 'greeting'
  readonly QMP: Record<string, unknown>
}
export interface QmpReturnReply {
  readonly kind: 'return'
  readonly return: unknown
  readonly id?: string | number
}
export interface QmpErrorReply {
  readonly kind: 'error'
  readonly error: { readonly class: string; readonly desc: string }
  readonly id?: string | number
}
export interface QmpEventMessage {
  readonly kind: 'event'
  readonly event: string
  readonly data: Record<string, unknown>
  readonly timestamp: { readonly seconds: number; readonly microseconds: number }
}
export type QmpMessage = QmpGreeting | QmpReturnReply | QmpErrorReply | QmpEventMessage
