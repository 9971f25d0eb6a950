/**
 * The cloud benches' stack: a network, a subnet and a ResourceGroup of `n` members, each a port,
 * a server on it and a volume attached to it (5 resources per member, 3 around them).
 */
const MEMBER_TEMPLATE = `heat_template_version: 2018-08-31
parameters:
  name: {type: string}
  network: {type: string}
  subnet: {type: string}
resources:
  port:
    type: OS::Neutron::Port
    properties:
      network: {get_param: network}
      fixed_ips: [{subnet: {get_param: subnet}}]
  server:
    type: OS::Nova::Server
    properties:
      name: {get_param: name}
      flavor: m1.tiny
      image: cirros-0.6.2-x86_64-disk
      networks: [{port: {get_resource: port}}]
  volume:
    type: OS::Cinder::Volume
    properties:
      size: 1
  attachment:
    type: OS::Cinder::VolumeAttachment
    properties:
      instance_uuid: {get_resource: server}
      volume_id: {get_resource: volume}
`;

/** Template and files of a fleet of `n` members whose cloud names start with `name`. */
export function serverFleet(name: string, n: number): { template: Record<string, unknown>; files: Record<string, string> } {
  // A /16 holds 65K addresses: enough for the full runs' 10K ports.
  const template = {
    heat_template_version: '2018-08-31',
    resources: {
      net: { type: 'OS::Neutron::Net', properties: { name: `${name}-net` } },
      subnet: { type: 'OS::Neutron::Subnet', properties: { network: { get_resource: 'net' }, cidr: '10.0.0.0/16' } },
      servers: {
        type: 'OS::Heat::ResourceGroup',
        properties: {
          count: n,
          resource_def: { type: 'member.yaml', properties: { name: `${name}-%index%`, network: { get_resource: 'net' }, subnet: { get_resource: 'subnet' } } },
        },
      },
    },
  };
  return { template, files: { 'member.yaml': MEMBER_TEMPLATE } };
}
