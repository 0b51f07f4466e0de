export { DEVICE_VERSION, type DeviceState, decodeDeviceState, encodeDeviceState } from './device-state.js'
export { KvClient } from './kv-client.js'
export {
  type DecodedRequest,
  decodeKvRequest,
  decodeKvResponse,
  encodeKvRequest,
  encodeKvResponse,
  KV_HEADER_BYTES,
  KvOp,
  type KvRequest,
  type KvResponse,
  KvStatus,
} from './kv-frame.js'
export type { NoiseOptions } from './noise.js'
export { SimulatedVm, type SimulatedVmActivity, type SimulatedVmOptions } from './simulated-vm.js'
