export { LeadershipLostError, NotLeaderError, ReplicaStoppedError } from './errors.js'
export { Replica, type ReplicaEvents, type ReplicaOptions } from './replica.js'
