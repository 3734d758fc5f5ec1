// Public face of service load balancing (VIPs and the routing mesh) for the agent.
export { VipBalancer } from './vip-balancer.js';
export { balancerTableScript, validateBalancerState } from './balancer-rules.js';
export type { BalancerState, MeshService, VipBalancerConfig, VipService } from './types.js';
