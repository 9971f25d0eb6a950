/**
 * Template engine benchmark: for generated templates of 1K, 10K and 50K resources, the time to
 * parse the YAML, build the stack (structure, parameters, function parsing, references,
 * dependency graph) and resolve every resource and output; then a 1,000,000-member
 * ResourceGroup (built once, members resolved on demand). Memory: heap after each step and the
 * process's peak RSS.
 * Last line: `template resources=.. parse_ms=.. json_parse_ms=.. build_ms=.. resolve_ms=.. group_members=.. group_build_ms=.. peak_rss_mb=..`
 * (figures of the largest template).
 * Usage: node bench/dist/template.js [--quick] [--json <file>]
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Environment, StackDefinition, Template, parseTemplateText, pendingSource, previewStack } from '@kiln/template';

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
const SIZES = quick ? [1_000, 10_000] : [1_000, 10_000, 50_000];
const GROUP_SIZE = quick ? 100_000 : 1_000_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

/**
 * A stack shaped like a real deployment: per "server" a port, a server and a volume attachment,
 * wired with get_resource/get_attr/get_param/str_replace/list_join, plus a Value per server.
 */
function generate(resources: number): string {
  const lines = [
    'heat_template_version: 2018-08-31',
    'parameters:',
    '  image: {type: string, default: cirros}',
    '  flavor: {type: string, default: m1.tiny, constraints: [{allowed_values: [m1.tiny, m1.small]}]}',
    '  net: {type: string, default: private}',
    'resources:',
  ];
  const servers = Math.floor(resources / 4);
  for (let i = 0; i < servers; i++) {
    lines.push(
      `  port${i}:`,
      '    type: OS::Neutron::Port',
      '    properties: {network: {get_param: net}, name: {list_join: ["-", [port, "' + i + '"]]}}',
      `  server${i}:`,
      '    type: OS::Nova::Server',
      '    properties:',
      '      image: {get_param: image}',
      '      flavor: {get_param: flavor}',
      `      networks: [{port: {get_resource: port${i}}}]`,
      `      user_data: {str_replace: {template: "echo $ip > /etc/peer", params: {$ip: {get_attr: [port${Math.max(0, i - 1)}, fixed_ips, 0, ip_address]}}}}`,
      `  volume${i}:`,
      '    type: OS::Cinder::VolumeAttachment',
      `    properties: {instance_uuid: {get_resource: server${i}}, volume_id: vol-${i}}`,
      `  value${i}:`,
      '    type: OS::Heat::Value',
      `    properties: {value: {str_replace: {template: "node-N", params: {N: "${i}"}}}}`,
      `    depends_on: [volume${i}]`,
    );
  }
  lines.push('outputs:', '  first_value: {value: {get_attr: [value0, value]}}', '  first_server: {value: {get_resource: server0}}');
  return `${lines.join('\n')}\n`;
}

function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const r = fn();
  return [r, performance.now() - t0];
}

interface Row {
  resources: number;
  yaml_kb: number;
  parse_ms: number;
  json_parse_ms: number;
  build_ms: number;
  resolve_ms: number;
  preview_ms: number;
  levels: number;
  heap_mb: number;
}

const rows: Row[] = [];
for (const n of SIZES) {
  const text = generate(n);
  const [raw, parseMs] = time(() => parseTemplateText(text, { maxBytes: 64 * 1024 * 1024 }));
  // The same template as JSON text (what programs generating big stacks send).
  const json = JSON.stringify(raw);
  const [, jsonParseMs] = time(() => parseTemplateText(json, { maxBytes: 64 * 1024 * 1024 }));
  const [stack, buildMs] = time(() => new StackDefinition(Template.from(raw), { environment: new Environment(), identity: { stackName: 'bench' } }));
  const [, resolveMs] = time(() => {
    const host = stack.host(pendingSource);
    for (const name of stack.graph.order()) stack.resolveResource(name, pendingSource, host);
    return stack.resolveOutputs(pendingSource, host);
  });
  const [, previewMs] = time(() => previewStack(stack));
  const row: Row = {
    resources: stack.resources.size,
    yaml_kb: Math.round(text.length / 1024),
    parse_ms: Math.round(parseMs),
    json_parse_ms: Math.round(jsonParseMs),
    build_ms: Math.round(buildMs),
    resolve_ms: Math.round(resolveMs),
    preview_ms: Math.round(previewMs),
    levels: stack.graph.levels().length,
    heap_mb: mb(process.memoryUsage().heapUsed),
  };
  rows.push(row);
  say(`${String(row.resources).padStart(6)} resources (${row.yaml_kb} KiB YAML): parse YAML ${row.parse_ms} ms (as JSON ${row.json_parse_ms} ms), build+graph ${row.build_ms} ms, resolve all ${row.resolve_ms} ms, preview ${row.preview_ms} ms; ${row.levels} levels; heap ${row.heap_mb} MiB`);
}

// A group of GROUP_SIZE members: one definition, members produced on demand.
const groupText = `heat_template_version: 2016-10-14
parameters:
  count: {type: number, default: ${GROUP_SIZE}}
resources:
  base: {type: OS::Heat::Value, properties: {value: cluster-a}}
  group:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      resource_def:
        type: OS::Heat::Value
        properties:
          value: {list_join: ['-', [{get_attr: [base, value]}, node, '%index%']]}
          labels: {index: '%index%', zone: {get_param: OS::stack_name}}
`;
const heapBefore = process.memoryUsage().heapUsed;
const [group, groupBuildMs] = time(() => {
  const stack = new StackDefinition(Template.from(parseTemplateText(groupText)), { identity: { stackName: 'bench' } });
  return stack.group('group', stack.resolveResource('group').properties)!;
});
const [lastMember, oneMemberMs] = time(() => group.member(group.count - 1));
const [checksum, allMembersMs] = time(() => {
  let bytes = 0;
  for (const m of group.members()) bytes += (m.properties.labels as { index: string }).index.length;
  return bytes;
});
const groupHeapMb = mb(process.memoryUsage().heapUsed - heapBefore);
say(
  `ResourceGroup of ${group.count} members: build ${Math.round(groupBuildMs)} ms, member ${lastMember.name} on demand ${oneMemberMs.toFixed(3)} ms, all members streamed ${Math.round(allMembersMs)} ms (${checksum} index chars), heap growth ${groupHeapMb} MiB`,
);

const peak = peakRssMb();
const last = rows[rows.length - 1]!;
say(`peak RSS ${peak} MiB`);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ quick, rows, group: { members: group.count, build_ms: groupBuildMs, member_ms: oneMemberMs, all_members_ms: allMembersMs, heap_growth_mb: groupHeapMb }, peak_rss_mb: peak }, null, 2)}\n`);
say(`template resources=${last.resources} parse_ms=${last.parse_ms} json_parse_ms=${last.json_parse_ms} build_ms=${last.build_ms} resolve_ms=${last.resolve_ms} group_members=${group.count} group_build_ms=${Math.round(groupBuildMs)} peak_rss_mb=${peak}`);
