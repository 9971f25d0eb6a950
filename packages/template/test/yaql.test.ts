// The yaql evaluator: INTRINSICS.md §4 yaql examples, real TripleO expressions, errors and limits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileYaql, YaqlError } from '../src/yaql/index.js';
import { resolve, throwsKiln } from './functions-host.js';

const y = (expression: string, data?: unknown) => resolve({ yaql: data === undefined ? { expression } : { expression, data } });
const ev = (expression: string, root: unknown = {}) => compileYaql(expression).evaluate(root);

test('§4 yaql: INTRINSICS examples', () => {
  assert.is(y('$.data.var1.sum()', { var1: [1, 2, 3, 4] }), 10);
  assert.is(y('$.data.sum()', [1, 2, 3, 4]), 10);
  assert.is(y('$.data', 'whynotastring'), 'whynotastring');
  assert.is(y('$.data + 2', 2), 4);
  assert.is(y('$.data.var1.len()', { var1: { list_join: ['', ['1', '2']] } }), 2);
  assert.equal(y('$.data.d.reduce($1.mergeWith($2))', { d: [{ a: [1] }, { a: [2] }, { a: [3] }] }), { a: [1, 2, 3] });
  assert.equal(y("$.data.where($.get('ip_address'))", [{ ip_address: '1.2.3.4' }, { subnet: 'x' }]), [{ ip_address: '1.2.3.4' }]);
});

test('§4 yaql: data defaults to {}', () => {
  assert.equal(y('$.data'), {});
});

test('§4 yaql as a condition function (2017-09-01+)', () => {
  const cond = (names: string[]) =>
    resolve({ yaql: { expression: '$.data.service_names.contains("neutron")', data: { service_names: { get_param: 'names' } } } }, { params: { names } }, 'condition');
  assert.is(cond(['neutron', 'heat']), true);
  assert.is(cond(['nova_network', 'heat']), false);
});

test('§4 yaql errors', () => {
  throwsKiln(() => resolve({ yaql: { expression: '$.data', bogus: '' } }), 'FUNCTION_INVALID', '"yaql" syntax should be yaql:');
  throwsKiln(() => resolve({ yaql: { data: 1 } }), 'FUNCTION_INVALID', '"yaql" syntax should be');
  throwsKiln(() => resolve({ yaql: 'invalid' }), 'FUNCTION_INVALID', 'yaql: Arguments to "yaql" must be a map.');
  const e = throwsKiln(() => resolve({ yaql: { expression: 'invalid(' } }), 'FUNCTION_INVALID', 'yaql: Bad expression Parse error: unexpected end of statement.');
  assert.is(e.reason, 'Bad expression Parse error: unexpected end of statement.');
  throwsKiln(() => resolve({ yaql: { expression: 5 } }), 'FUNCTION_INVALID', 'The "expression" argument to yaql must contain a string.');
  throwsKiln(() => y('$.data.nosuchfunction()', {}), 'FUNCTION_INVALID', 'Unknown function "nosuchfunction"');
});

test('§4 yaql: the expression may come from a function', () => {
  assert.is(resolve({ yaql: { expression: { get_param: 'e' }, data: [1, 2] } }, { params: { e: '$.data.len()' } }), 2);
  throwsKiln(() => resolve({ yaql: { expression: { get_param: 'e' } } }, { params: { e: '1 +' } }), 'FUNCTION_INVALID', 'Bad expression Parse error');
});

test('tripleo deployed_networks.yaml: items().first().last().ip_version', () => {
  const subnets = { 'ctlplane-subnet': { ip_version: 4, cidr: '192.168.24.0/24' } };
  assert.is(y('$.data.items().first().last().ip_version', subnets), 4);
});

test('tripleo: raw_disk_lists.flatten()', () => {
  assert.equal(y('$.data.raw_disk_lists.flatten()', { raw_disk_lists: [['sda', 'sdb'], ['sdc'], []] }), ['sda', 'sdb', 'sdc']);
});

const HUGEPAGE_COUNT =
  'let(hzx => regex("([0-9]+[K|M|G])").search($.data.kern_p+$.data.kern_g)) -> let(hz =>int(switch($hzx = "4K" => "4", $hzx = "2M" => "2048", $hzx = "1G" => "1048576", $hzx  => "2048", $hzx = null => "2048"))) -> $.data.dpdk_p.select(int($)*1024/$hz).join(",").split(\',\')';
const HUGEPAGE_SIZE =
  'let(hzx => regex("([0-9]+[K|M|G])").search($.data.kern_p+$.data.kern_g)) -> let(hz =>switch($hzx = "4K" => "4", $hzx = "2M" => "2048", $hzx = "1G" => "1048576", $hzx  => "2048", $hzx = null => "2048")) -> [$hz]*len($.data.dpdk_p)';

test('tripleo ovs-dpdk: hugepage count per NUMA node (let, regex, switch, int, select, join, split)', () => {
  const data = { dpdk_p: ['1024', '2048'], kern_p: 'default_hugepagesz=1GB hugepagesz=1G hugepages=32', kern_g: '' };
  assert.equal(y(HUGEPAGE_COUNT, data), ['1', '2']);
  assert.equal(y(HUGEPAGE_COUNT, { ...data, kern_p: 'hugepagesz=2M', kern_g: '' }), ['512', '1024']);
  assert.equal(y(HUGEPAGE_COUNT, { ...data, kern_p: '', kern_g: '' }), ['512', '1024']);
});

test('tripleo ovs-dpdk: hugepage size list ([x] * n)', () => {
  assert.equal(y(HUGEPAGE_SIZE, { dpdk_p: ['1024', '1024'], kern_p: 'hugepagesz=1G', kern_g: '' }), ['1048576', '1048576']);
  assert.equal(y(HUGEPAGE_SIZE, { dpdk_p: ['1024'], kern_p: '', kern_g: '' }), ['2048']);
});

test('tripleo ovs-dpdk: node index list', () => {
  assert.equal(y('range(0,len($.data.dpdk_p)).join(",").split(",")', { dpdk_p: ['a', 'b', 'c'] }), ['0', '1', '2']);
});

const multistore = {
  ceph2: { CephClusterName: 'ceph2', CephClientUserName: 'glance2', GlanceRbdPoolName: 'images2' },
  ceph3: { CephClusterName: 'ceph3' },
  file: { GlanceBackend: 'file' },
};

test('tripleo nova-compute: multistore lookups with defaults', () => {
  const user = 'let(k => $.data.key, d => $.data.default_ceph_client_user_name) -> $.data.multistore.get($k).get("CephClientUserName", $d)';
  assert.is(y(user, { key: 'ceph2', multistore, default_ceph_client_user_name: 'openstack' }), 'glance2');
  assert.is(y(user, { key: 'ceph3', multistore, default_ceph_client_user_name: 'openstack' }), 'openstack');
  const conf = 'let(k => $.data.key) -> list(coalesce($.data.multistore, {}).get($k)).select($.get("CephClusterName"))';
  assert.equal(y(conf, { key: 'ceph3', multistore }), ['ceph3']);
});

test('tripleo nova-compute: keyring names (values, where, select, format)', () => {
  const expr =
    'let(u => $.data.user) -> $.data.multistore.values().where($.get("CephClusterName")).select("{0}.client.{1}.keyring".format($.CephClusterName, $.get("CephClientUserName", $u)    ))';
  assert.equal(y(expr, { user: 'openstack', multistore }), ['ceph2.client.glance2.keyring', 'ceph3.client.openstack.keyring']);
});

test('tripleo: str($.data.debug) writes booleans the yaql way', () => {
  assert.is(y('str($.data.debug)', { debug: true }), 'true');
  assert.is(y('str($.data.debug)', { debug: false }), 'false');
  assert.is(y('str($.data.debug)', {}), 'null');
});

test('yaql language: operators and literals', () => {
  assert.is(ev('1 + 2 * 3'), 7);
  assert.is(ev('(1 + 2) * 3'), 9);
  assert.is(ev('7 / 2'), 3);
  assert.is(ev('7.5 / 2'), 3.75);
  assert.is(ev('7 mod 3'), 1);
  assert.is(ev('-3 + 1'), -2);
  assert.is(ev("'a' + \"b\""), 'ab');
  assert.equal(ev('[1, 2] + [3]'), [1, 2, 3]);
  assert.equal(ev('{a => 1} + {b => 2}'), { a: 1, b: 2 });
  assert.is(ev('1 = 1 and 2 != 3'), true);
  assert.is(ev('not 1 > 2'), true);
  assert.is(ev('1 < 2 or false'), true);
  assert.is(ev('2 in [1, 2]'), true);
  assert.is(ev("'ab' =~ 'a.'"), true);
  assert.is(ev('null = null'), true);
  assert.is(ev('$.a[1]', { a: [1, 2] }), 2);
  assert.is(ev('$.a["k"]', { a: { k: 'v' } }), 'v');
  assert.is(ev('$.missing?.deeper', {}), null);
  assert.is(ev('$.x -> $ + 1', { x: 1 }), 2);
  assert.equal(ev('dict(a => 1, b => $.x)', { x: 2 }), { a: 1, b: 2 });
});

test('yaql language: functions', () => {
  assert.equal(ev('$.select($ * 2)', [1, 2]), [2, 4]);
  assert.equal(ev('$.where($ > 1).select($ + 1)', [1, 2, 3]), [3, 4]);
  assert.is(ev('$.first()', [5, 6]), 5);
  assert.is(ev('$.last()', [5, 6]), 6);
  assert.is(ev('[].first(7)'), 7);
  assert.equal(ev('$.keys()', { a: 1, b: 2 }), ['a', 'b']);
  assert.equal(ev('$.values()', { a: 1, b: 2 }), [1, 2]);
  assert.equal(ev('range(3)'), [0, 1, 2]);
  assert.equal(ev('range(1, 7, 2)'), [1, 3, 5]);
  assert.is(ev('",".join([1, null, true])'), '1,null,true');
  assert.is(ev('$.join("-")', ['a', 'b']), 'a-b');
  assert.equal(ev('"a b  c".split()'), ['a', 'b', 'c']);
  assert.equal(ev('"a,b,c".split(",", 1)'), ['a', 'b,c']);
  assert.is(ev('coalesce(null, null, 3)'), 3);
  assert.is(ev('switch(false => 1, true => 2)'), 2);
  assert.is(ev('switch(false => 1)'), null);
  assert.is(ev('int("42") + int(2.7)'), 44);
  assert.is(ev('"{0}-{1}-{x}".format(1, true, x => "y")'), '1-True-y');
  assert.equal(ev('$.distinct()', [1, 2, 1, 3]), [1, 2, 3]);
  assert.is(ev('$.max()', [1, 5, 3]), 5);
  assert.is(ev('max(1, 4)'), 4);
  assert.equal(ev('$.orderBy($.n).select($.n)', [{ n: 3 }, { n: 1 }, { n: 2 }]), [1, 2, 3]);
  assert.is(ev('$.any($ > 2)', [1, 3]), true);
  assert.is(ev('$.all($ > 2)', [1, 3]), false);
  assert.is(ev('"Hello".toUpper().startsWith("HE")'), true);
  assert.is(ev('"abc".replace("b", "x")'), 'axc');
  assert.equal(ev('$.selectMany($)', [[1], [2, 3]]), [1, 2, 3]);
  assert.is(ev('regex("[0-9]+").search("ab12cd")'), '12');
  assert.is(ev('regex("^a").matches("abc")'), true);
  assert.equal(ev('let(1, x => 2) -> [$1, $x]'), [1, 2]);
  assert.equal(ev('{a => [1]}.mergeWith({a => [1, 2], b => 3})'), { a: [1, 2], b: 3 });
  assert.is(ev('$.isEmpty()', []), true);
  assert.is(ev('len("abc") + [1, 2].len() + $.count()', { a: 1 }), 6);
  assert.equal(ev('$.items()', { a: 1 }), [['a', 1]]);
  assert.equal(ev('concat("a", "b")'), 'ab');
});

test('yaql parse errors', () => {
  const parseError = (expr: string, text: string) => {
    try {
      compileYaql(expr);
    } catch (e) {
      assert.instance(e, YaqlError);
      assert.ok((e as Error).message.includes(text), (e as Error).message);
      return;
    }
    assert.unreachable(`${expr} should not parse`);
  };
  parseError('invalid(', 'Parse error: unexpected end of statement');
  parseError('$.a +', 'Parse error: unexpected end of statement');
  parseError('1 2', "Parse error: unexpected '2' at position 2");
  parseError('$.a[', 'unexpected end of statement');
  parseError('"open', 'Lexical error');
  parseError('1 # 2', 'Lexical error: illegal character');
  parseError('('.repeat(500) + '1' + ')'.repeat(500), 'nested too deeply');
});

test('yaql limits: iterators, memory quota and step budget stop hostile expressions', () => {
  throwsKiln(() => y('$.data.select($)', Array.from({ length: 201 }, (_, i) => i)), 'FUNCTION_INVALID', 'Collection length exceeds 200');
  throwsKiln(() => y('range(1000)'), 'FUNCTION_INVALID', 'Collection length exceeds 200');
  throwsKiln(() => y('[1] * 100000000'), 'FUNCTION_INVALID', 'too much memory');
  throwsKiln(() => y('"x" * 100000'), 'FUNCTION_INVALID', 'too much memory');
  throwsKiln(() => y('range(200).select(range(200).select(range(200).select($)))'), 'FUNCTION_INVALID', 'step budget');
  assert.equal((y('range(200).select($)') as unknown[]).length, 200);
});

test('yaql over pending data is pending', () => {
  const out = resolve({ yaql: { expression: '$.data.len()', data: { get_attr: ['srv', 'networks'] } } }, { resources: { srv: { pending: true } } });
  assert.equal(JSON.parse(JSON.stringify(out)), { pending: 'get_attr: srv.networks' });
});

test.run();
