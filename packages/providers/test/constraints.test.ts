import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KilnError } from '@kiln/core';
import { CustomConstraintRegistry, buildStack, builtinTypeRegistry } from '@kiln/template';
import { CloudConstraints, registerCloudConstraints, registerTypeSchemas } from '../src/index.js';
import { create, startWorld, type World } from './helpers.js';

const test = suite<{ w?: World }>('custom constraints and schemas backed by the cloud');
test.before(async (c) => {
  c.w = await startWorld();
});
test.after(async (c) => {
  await c.w?.stop();
});

test('flavor, image, network, subnet, volume: ids and unique names pass, others fail with Heat wording', async ({ w }) => {
  const net = await create(w!.type('OS::Neutron::Net'), 'n', { name: 'private' });
  const sub = await create(w!.type('OS::Neutron::Subnet'), 's', { network: net.physicalId, cidr: '10.3.0.0/24', name: 'private-sub' });
  const vol = await create(w!.type('OS::Cinder::Volume'), 'v', { size: 1, name: 'data' });
  const reg = new CustomConstraintRegistry();
  const c = await registerCloudConstraints(reg, w!.client);
  const check = (name: string, v: unknown) => reg.get(name)!(v);
  assert.is(check('nova.flavor', 'm1.small'), undefined);
  assert.is(check('nova.flavor', '2'), undefined);
  assert.is(check('nova.flavor', 'm1.gigantic'), "Error validating value 'm1.gigantic': The Flavor ID (m1.gigantic) could not be found.");
  assert.is(check('glance.image', 'fedora-39'), undefined);
  assert.match(check('glance.image', 'windows')!, /The Image \(windows\) could not be found/);
  assert.is(check('neutron.network', 'private'), undefined);
  assert.is(check('neutron.network', net.physicalId), undefined);
  assert.match(check('neutron.network', 'public')!, /Unable to find network with name or id 'public'/);
  assert.is(check('neutron.subnet', 'private-sub'), undefined);
  assert.is(check('neutron.subnet', sub.physicalId), undefined);
  assert.is(check('cinder.volume', vol.physicalId), undefined);
  assert.match(check('cinder.volume', 'nope')!, /The Volume \(nope\) could not be found/);
  assert.is(check('neutron.network', ['private', net.physicalId]), undefined, 'lists are checked item by item');
  assert.is(reg.get('nova.keypair'), undefined, 'no keypairs in this cloud: not checked');

  // A network made after the snapshot is seen after refresh().
  await create(w!.type('OS::Neutron::Net'), 'n2', { name: 'later' });
  assert.ok(check('neutron.network', 'later'));
  await c.refresh();
  assert.is(check('neutron.network', 'later'), undefined);
  assert.ok(CloudConstraints.names.includes('neutron.port'));
});

test('parameters with custom_constraint are checked by the template layer through the registry', async ({ w }) => {
  const reg = new CustomConstraintRegistry();
  await registerCloudConstraints(reg, w!.client);
  const template = {
    heat_template_version: '2018-08-31',
    parameters: { flavor: { type: 'string', constraints: [{ custom_constraint: 'nova.flavor' }] } },
    resources: {},
  };
  buildStack({ template, environment: {}, files: {} }, { customConstraints: reg, params: { flavor: 'm1.tiny' } });
  let err: unknown;
  try {
    buildStack({ template, environment: {}, files: {} }, { customConstraints: reg, params: { flavor: 'm1.gigantic' } });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof KilnError, String(err));
  assert.match((err as KilnError).message, /m1\.gigantic/);
});

test('type schemas registered with the template layer catch unknown properties and attributes', async ({ w }) => {
  const types = builtinTypeRegistry(true);
  registerTypeSchemas(types, w!.provider.types);
  assert.ok(types.get('OS::Nova::Server')!.attributes!.includes('first_address'));
  assert.ok(types.get('OS::Nova::Server')!.properties!.flavor!.required);
  assert.ok(types.has('OS::Octavia::HealthMonitor'));
  const bad = {
    heat_template_version: '2018-08-31',
    resources: { s: { type: 'OS::Nova::Server', properties: { flavor: 'm1.tiny', flavour: 'typo' } } },
  };
  let err: unknown;
  try {
    buildStack({ template: bad, environment: {}, files: {} }, { types });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof KilnError, 'unknown property refused');
});

test.run();
