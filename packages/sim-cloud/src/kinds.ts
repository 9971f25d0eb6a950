import type { Kind } from './config.js';

export type Service = 'compute' | 'network' | 'volume' | 'load-balancer';

export interface KindApi {
  service: Service;
  /** Collection path; members live under `/load-balancer/v2/lbaas/pools/{pool_id}/members`. */
  path: string;
  singular: string;
  plural: string;
  /** What a create answers: Nova and Cinder accept (202), Neutron and Octavia create (201). */
  createStatus: 201 | 202;
  /** The quota (see Quota) a live object of this kind counts against. */
  quota: string;
}

export const KIND_API: Record<Kind, KindApi> = {
  server: { service: 'compute', path: '/compute/v2.1/servers', singular: 'server', plural: 'servers', createStatus: 202, quota: 'instances' },
  network: { service: 'network', path: '/network/v2.0/networks', singular: 'network', plural: 'networks', createStatus: 201, quota: 'networks' },
  subnet: { service: 'network', path: '/network/v2.0/subnets', singular: 'subnet', plural: 'subnets', createStatus: 201, quota: 'subnets' },
  port: { service: 'network', path: '/network/v2.0/ports', singular: 'port', plural: 'ports', createStatus: 201, quota: 'ports' },
  router: { service: 'network', path: '/network/v2.0/routers', singular: 'router', plural: 'routers', createStatus: 201, quota: 'routers' },
  floatingip: { service: 'network', path: '/network/v2.0/floatingips', singular: 'floatingip', plural: 'floatingips', createStatus: 201, quota: 'floatingips' },
  security_group: { service: 'network', path: '/network/v2.0/security-groups', singular: 'security_group', plural: 'security_groups', createStatus: 201, quota: 'security_groups' },
  volume: { service: 'volume', path: '/volume/v3/volumes', singular: 'volume', plural: 'volumes', createStatus: 202, quota: 'volumes' },
  loadbalancer: { service: 'load-balancer', path: '/load-balancer/v2/lbaas/loadbalancers', singular: 'loadbalancer', plural: 'loadbalancers', createStatus: 201, quota: 'loadbalancers' },
  listener: { service: 'load-balancer', path: '/load-balancer/v2/lbaas/listeners', singular: 'listener', plural: 'listeners', createStatus: 201, quota: 'listeners' },
  pool: { service: 'load-balancer', path: '/load-balancer/v2/lbaas/pools', singular: 'pool', plural: 'pools', createStatus: 201, quota: 'pools' },
  member: { service: 'load-balancer', path: '/load-balancer/v2/lbaas/pools/{pool_id}/members', singular: 'member', plural: 'members', createStatus: 201, quota: 'members' },
  healthmonitor: { service: 'load-balancer', path: '/load-balancer/v2/lbaas/healthmonitors', singular: 'healthmonitor', plural: 'healthmonitors', createStatus: 201, quota: 'healthmonitors' },
};

/** Octavia kinds report provisioning_status (and operating_status) instead of status. */
export const LB_KINDS = new Set<Kind>(['loadbalancer', 'listener', 'pool', 'member', 'healthmonitor']);

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
}

export const FLAVORS: readonly Flavor[] = [
  { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
  { id: '2', name: 'm1.small', vcpus: 1, ram: 2048, disk: 20 },
  { id: '3', name: 'm1.medium', vcpus: 2, ram: 4096, disk: 40 },
  { id: '4', name: 'm1.large', vcpus: 4, ram: 8192, disk: 80 },
  { id: '5', name: 'm1.xlarge', vcpus: 8, ram: 16384, disk: 160 },
];

export interface Image {
  id: string;
  name: string;
  status: 'active';
  min_disk: number;
  min_ram: number;
  disk_format: string;
  container_format: string;
}

export const IMAGES: readonly Image[] = [
  { id: '6b0c0a1e-5c1f-4c5a-9a43-0a1c2b3d4e01', name: 'cirros-0.6.2-x86_64-disk', status: 'active', min_disk: 0, min_ram: 0, disk_format: 'qcow2', container_format: 'bare' },
  { id: '6b0c0a1e-5c1f-4c5a-9a43-0a1c2b3d4e02', name: 'ubuntu-22.04', status: 'active', min_disk: 3, min_ram: 0, disk_format: 'qcow2', container_format: 'bare' },
  { id: '6b0c0a1e-5c1f-4c5a-9a43-0a1c2b3d4e03', name: 'fedora-39', status: 'active', min_disk: 5, min_ram: 0, disk_format: 'qcow2', container_format: 'bare' },
];

/** The tag that carries an idempotency key on every object (`kiln:key=<key>`). */
export const KEY_TAG_PREFIX = 'kiln:key=';
/** The metadata key that carries it on servers and volumes. */
export const KEY_METADATA = 'kiln:key';
