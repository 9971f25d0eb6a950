import { parseArgs } from 'node:util';
import { KilnError, toKilnError } from '@kiln/core';
import { loadStackRequest } from '@kiln/template';
import type { KilnClient, ResourceView, StackSource, StackView } from '@kiln/sdk';
import { NATS_OPTIONS, connectClient, type NatsArgs } from '../nats-options.js';
import { formatTable, printJson, reportError } from '../output.js';
import { isFailed, waitForStack } from '../progress.js';
import type { Command } from './index.js';
import { parseParameters } from './template.js';

const OPTIONS = {
  ...NATS_OPTIONS,
  template: { type: 'string', short: 't' },
  environment: { type: 'string', short: 'e', multiple: true },
  parameter: { type: 'string', short: 'P', multiple: true },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  'nested-depth': { type: 'string' },
  reason: { type: 'string' },
  reset: { type: 'boolean' },
  limit: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

interface Invocation {
  values: Values;
  positionals: string[];
  json: boolean;
}

/** One `kiln stack …` (or `kiln resource …`) subcommand. */
interface Sub {
  usage: string;
  summary: string;
  /** How many positionals it needs (at least) and takes (at most). */
  args: [min: number, max: number];
  run(client: KilnClient, inv: Invocation): Promise<number>;
}

const NATS_USAGE = '[--nats URL] [--tenant T] [--user U --password P]';

/** Template, environments and parameters read like heatclient's `-t/-e/-P`. */
function source(v: Values, required: boolean): StackSource | undefined {
  if (!v.template) {
    if (required) throw new KilnError('REQUEST_INVALID', 'the template (-t) is required', { path: '--template' });
    return undefined;
  }
  const req = loadStackRequest(v.template, v.environment ?? []);
  const src: StackSource = { template: req.template, environment: req.environment as Record<string, unknown>, files: req.files };
  const params = parseParameters(v.parameter);
  if (Object.keys(params).length) src.parameters = params;
  return src;
}

function timeoutMs(v: Values): number | undefined {
  if (v.timeout === undefined) return undefined;
  const s = Number(v.timeout);
  if (!(s > 0)) throw new KilnError('REQUEST_INVALID', '--timeout takes a number of seconds', { path: '--timeout' });
  return s * 1000;
}

function intOption(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new KilnError('REQUEST_INVALID', `--${name} takes a whole number`, { path: `--${name}` });
  return n;
}

/** `stack show --json`: outputs as a map of key to value (what a script wants), plus the counts. */
export function stackJson(view: StackView): Record<string, unknown> {
  const outputs: Record<string, unknown> = {};
  for (const o of view.outputs ?? []) outputs[o.key] = o.error !== undefined ? { error: o.error } : (o.value ?? null);
  return {
    id: view.id,
    name: view.name,
    status: view.status,
    status_reason: view.status_reason ?? '',
    generation: view.generation,
    created_at: view.created_at,
    updated_at: view.updated_at,
    parameters: view.parameters ?? {},
    outputs,
    resources: { total: view.resources.total, by_status: view.resources.by_status },
  };
}

function printStack(view: StackView): void {
  const rows: Array<[string, unknown]> = [
    ['id', view.id],
    ['name', view.name],
    ['status', view.status],
    ['status_reason', view.status_reason ?? ''],
    ['generation', view.generation],
    ['created_at', view.created_at],
    ['updated_at', view.updated_at],
    ['resources', `${view.resources.total} (${Object.entries(view.resources.by_status).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'})`],
  ];
  for (const o of view.outputs ?? []) rows.push([`output ${o.key}`, o.error !== undefined ? `error: ${o.error}` : o.value]);
  process.stdout.write(formatTable(['field', 'value'], rows));
}

/** After a write: wait (with progress) if asked, then print; FAILED ends with exit code 1. */
async function afterWrite(client: KilnClient, inv: Invocation, ref: { id: string; name: string; generation: number }, deleting: boolean): Promise<number> {
  if (!inv.values.wait) {
    if (inv.json) printJson(ref);
    else process.stdout.write(`stack ${ref.name} (${ref.id}) generation ${ref.generation} accepted\n`);
    return 0;
  }
  const out = inv.json ? (process.stderr.isTTY ? process.stderr : undefined) : process.stdout;
  const view = await waitForStack(client, ref.id, { generation: ref.generation, timeoutMs: timeoutMs(inv.values), out });
  if (!view || (deleting && view.status === 'DELETE_COMPLETE')) {
    if (inv.json) printJson({ id: ref.id, name: ref.name, generation: ref.generation, status: 'DELETE_COMPLETE' });
    else process.stdout.write(`stack ${ref.name} deleted\n`);
    return 0;
  }
  if (inv.json) printJson(stackJson(view));
  else if (isFailed(view.status)) process.stderr.write(`stack ${view.name} ${view.status}: ${view.status_reason ?? ''}\n`);
  else process.stdout.write(`stack ${view.name} ${view.status}\n`);
  return isFailed(view.status) ? 1 : 0;
}

function resourceRow(r: ResourceView): Record<string, unknown> {
  return {
    name: r.name,
    ...(r.path !== undefined ? { path: r.path } : {}),
    type: r.type,
    status: r.status,
    status_reason: r.status_reason ?? '',
    physical_id: r.physical_id ?? null,
    generation: r.generation,
  };
}

const resourceList: Sub = {
  usage: 'NAME [--nested-depth N] [--json]',
  summary: "list a stack's resources (group members and nested resources with their path)",
  args: [1, 1],
  async run(client, { values, positionals, json }) {
    // Members of groups and nested stacks are included by default (a path says where they sit).
    const depth = intOption(values['nested-depth'], 'nested-depth', 5);
    const rows: Record<string, unknown>[] = [];
    for await (const r of client.resources(positionals[0]!, { nested_depth: depth })) rows.push(resourceRow(r));
    if (json) printJson(rows);
    else process.stdout.write(formatTable(['resource', 'type', 'status', 'physical_id', 'generation'], rows.map((r) => [r.path ?? r.name, r.type, r.status, r.physical_id, r.generation])));
    return 0;
  },
};

const resourceShow: Sub = {
  usage: 'NAME RESOURCE [--json]',
  summary: 'show one resource (a nested one by path, e.g. workers/3)',
  args: [2, 2],
  async run(client, { positionals, json }) {
    const r = await client.showResource(positionals[0]!, positionals[1]!);
    if (json) printJson(r);
    else process.stdout.write(formatTable(['field', 'value'], Object.entries(r)));
    return 0;
  },
};

const markUnhealthy: Sub = {
  usage: 'NAME RESOURCE [--reason TEXT] [--reset] [--json]',
  summary: 'mark a resource unhealthy (it is replaced) or, with --reset, healthy again',
  args: [2, 2],
  async run(client, { values, positionals, json }) {
    const [stack, resource] = [positionals[0]!, positionals[1]!];
    await client.markUnhealthy(stack, resource, { unhealthy: !values.reset, ...(values.reason !== undefined ? { reason: values.reason } : {}) });
    if (json) printJson({ stack, resource, unhealthy: !values.reset });
    else process.stdout.write(`resource ${resource} of stack ${stack} marked ${values.reset ? 'healthy' : 'unhealthy'}\n`);
    return 0;
  },
};

const STACK_SUBS: Record<string, Sub> = {
  create: {
    usage: 'NAME -t TEMPLATE [-e ENV]... [-P key=value]... [--wait [--timeout S]] [--json]',
    summary: 'create a stack',
    args: [1, 1],
    async run(client, inv) {
      const ref = await client.createStack(inv.positionals[0]!, source(inv.values, true)!);
      return afterWrite(client, inv, ref, false);
    },
  },
  update: {
    usage: 'NAME [-t TEMPLATE] [-e ENV]... [-P key=value]... [--wait [--timeout S]] [--json]',
    summary: 'new desired state: a template replaces everything; -P alone patches parameters',
    args: [1, 1],
    async run(client, inv) {
      const name = inv.positionals[0]!;
      const src = source(inv.values, false);
      let ref;
      if (src) ref = await client.updateStack(name, src);
      else {
        const params = parseParameters(inv.values.parameter);
        if (!Object.keys(params).length) throw new KilnError('REQUEST_INVALID', 'give a template (-t) or parameters (-P) to update', { path: '--template' });
        ref = await client.patchStack(name, { parameters: params });
      }
      return afterWrite(client, inv, ref, false);
    },
  },
  delete: {
    usage: 'NAME [--wait [--timeout S]] [--json]',
    summary: 'delete a stack and its resources',
    args: [1, 1],
    async run(client, inv) {
      return afterWrite(client, inv, await client.deleteStack(inv.positionals[0]!), true);
    },
  },
  show: {
    usage: 'NAME [--json]',
    summary: "a stack's status, outputs and resource counts",
    args: [1, 1],
    async run(client, { positionals, json }) {
      const view = await client.showStack(positionals[0]!);
      if (json) printJson(stackJson(view));
      else printStack(view);
      return 0;
    },
  },
  list: {
    usage: '[--json]',
    summary: "the tenant's stacks",
    args: [0, 0],
    async run(client, { json }) {
      const rows = [];
      for await (const s of client.stacks()) rows.push({ id: s.id, name: s.name, status: s.status, generation: s.generation, created_at: s.created_at, updated_at: s.updated_at });
      if (json) printJson(rows);
      else process.stdout.write(formatTable(['id', 'name', 'status', 'generation', 'updated_at'], rows.map((s) => [s.id, s.name, s.status, s.generation, s.updated_at])));
      return 0;
    },
  },
  'output list': {
    usage: 'NAME [--json]',
    summary: "a stack's outputs with their values",
    args: [1, 1],
    async run(client, { positionals, json }) {
      const outputs = await client.outputs(positionals[0]!);
      if (json) printJson(outputs);
      else process.stdout.write(formatTable(['output', 'value', 'description'], outputs.map((o) => [o.key, o.error !== undefined ? `error: ${o.error}` : o.value, o.description ?? ''])));
      return 0;
    },
  },
  'output show': {
    usage: 'NAME [OUTPUT] [--json]',
    summary: 'one output (or all of them)',
    args: [1, 2],
    async run(client, { positionals, json }) {
      const [stack, key] = positionals;
      const outputs = await client.outputs(stack!, key);
      if (key !== undefined && outputs.length === 0) throw new KilnError('REQUEST_INVALID', `stack ${stack} has no output ${key}`, { path: 'output' });
      if (json) printJson(key !== undefined ? outputs[0] : outputs);
      else if (key !== undefined) {
        const v = outputs[0]!.value;
        process.stdout.write(`${typeof v === 'string' ? v : JSON.stringify(v, null, 2)}\n`);
      } else process.stdout.write(formatTable(['output', 'value'], outputs.map((o) => [o.key, o.value])));
      return 0;
    },
  },
  'event list': {
    usage: 'NAME [--limit N] [--json]',
    summary: "a stack's events, oldest first",
    args: [1, 1],
    async run(client, { values, positionals, json }) {
      const limit = intOption(values.limit, 'limit', 1000);
      const events = [];
      for await (const ev of client.events({ stack: positionals[0]! })) {
        events.push(ev);
        if (events.length >= limit) break;
      }
      if (json) printJson(events);
      else process.stdout.write(formatTable(['seq', 'time', 'resource', 'status', 'reason'], events.map((e) => [e.seq, e.time, e.resource ?? e.stack_name ?? e.stack, e.status, e.reason ?? ''])));
      return 0;
    },
  },
  'resource list': resourceList,
  'resource show': resourceShow,
  'resource mark-unhealthy': markUnhealthy,
};

const RESOURCE_SUBS: Record<string, Sub> = { list: resourceList, show: resourceShow, 'mark-unhealthy': markUnhealthy };

function usageOf(group: string, subs: Record<string, Sub>): string {
  return `usage:\n${Object.entries(subs)
    .map(([n, s]) => `  kiln ${group} ${n} ${s.usage}\n      ${s.summary}`)
    .join('\n')}\ncommon options: ${NATS_USAGE}\n`;
}

/** Finds the subcommand (one or two words), parses its options and runs it against the API. */
async function dispatch(group: string, subs: Record<string, Sub>, args: string[]): Promise<number> {
  const json = args.includes('--json');
  const [w1, w2] = args;
  const two = w1 !== undefined && w2 !== undefined ? `${w1} ${w2}` : undefined;
  const name = two !== undefined && subs[two] ? two : w1;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usageOf(group, subs));
    return name === undefined ? 2 : 0;
  }
  const sub = subs[name];
  if (!sub) {
    process.stderr.write(`kiln ${group}: unknown command '${name}'\n${usageOf(group, subs)}`);
    return 2;
  }
  let client: KilnClient | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: args.slice(name.split(' ').length), options: OPTIONS, allowPositionals: true });
    } catch (e) {
      throw new KilnError('REQUEST_INVALID', `${(e as Error).message}\nusage: kiln ${group} ${name} ${sub.usage}`);
    }
    if (parsed.values.help) {
      process.stdout.write(`usage: kiln ${group} ${name} ${sub.usage} ${NATS_USAGE}\n  ${sub.summary}\n`);
      return 0;
    }
    const [min, max] = sub.args;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new KilnError('REQUEST_INVALID', `wrong number of arguments\nusage: kiln ${group} ${name} ${sub.usage}`);
    }
    const inv: Invocation = { values: parsed.values, positionals: parsed.positionals, json };
    client = await connectClient(parsed.values as NatsArgs);
    return await sub.run(client, inv);
  } catch (e) {
    reportError(toKilnError(e), json);
    return 1;
  } finally {
    await client?.close();
  }
}

export const stackCommand: Command = {
  usage: 'stack create|update|delete|show|list|output|event|resource ...',
  summary: 'manage stacks (like `openstack stack ...`); `kiln stack help` for details',
  run: (args) => dispatch('stack', STACK_SUBS, args),
};

export const resourceCommand: Command = {
  usage: 'resource list|show|mark-unhealthy STACK ...',
  summary: "a stack's resources; `kiln resource help` for details",
  run: (args) => dispatch('resource', RESOURCE_SUBS, args),
};
