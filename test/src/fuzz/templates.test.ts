import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { call, checkProperty, corpusDir, startApiBed, untypedError, writeMark, type ApiBed, type Reply } from './harness.js';
import { waitFor } from '@kiln/natsd';

/**
 * Mutated conformance templates through stack.validate, stack.preview and stack.create on the
 * API of a real engine: typed errors only, the engine keeps answering, validate/preview write
 * nothing, a refused create leaves no stack, an accepted one is deleted to nothing.
 */
const bed = {} as { b: ApiBed };
const test = suite('fuzz: mutated corpus templates');

const corpus = readFileSync(join(corpusDir, 'MANIFEST.tsv'), 'utf8')
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t')[0] ?? '')
  .filter((f) => /\.(ya?ml|json|template)$/.test(f))
  .map((f) => ({ file: f, text: readFileSync(join(corpusDir, f), 'utf8') }));

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; junk: string }
  | { kind: 'replace-node'; pick: number; value: unknown }
  | { kind: 'drop-node'; pick: number }
  | { kind: 'rename-type'; pick: number; type: string }
  | { kind: 'self-reference'; pick: number };

const junkValue = fc.oneof(
  fc.anything({ maxDepth: 2 }),
  fc.constantFrom({ get_attr: ['nowhere', 'x'] }, { get_param: 'missing' }, { get_resource: 'ghost' }, { str_replace: 1 }, { 'Fn::Join': [] }, { list_join: [',', 3] }, { if: [] }, { repeat: {} }, { get_file: '/etc/passwd' }, '2999-01-01', -1, null, [], {}),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((at) => ({ kind: 'truncate' as const, at })),
  fc.record({ at: fc.nat(), junk: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(':', '- ', '{', ']]', '\t', '&a *a', '!!binary', '%YAML', '\u0000', '"')) }).map((m) => ({ kind: 'splice' as const, ...m })),
  fc.record({ pick: fc.nat(), value: junkValue }).map((m) => ({ kind: 'replace-node' as const, ...m })),
  fc.nat().map((pick) => ({ kind: 'drop-node' as const, pick })),
  fc.record({ pick: fc.nat(), type: fc.constantFrom('OS::Heat::None', 'OS::Heat::RandomString', 'OS::Nope::Nothing', 'file:///x.yaml', '', 'OS::Heat::ResourceGroup') }).map((m) => ({ kind: 'rename-type' as const, ...m })),
  fc.nat().map((pick) => ({ kind: 'self-reference' as const, pick })),
);

/** Every (container, key) of a parsed document, so a mutation can pick any node. */
function slots(doc: unknown): Array<[Record<string, unknown> | unknown[], string | number]> {
  const out: Array<[Record<string, unknown> | unknown[], string | number]> = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), walk(x)));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (out.push([v as Record<string, unknown>, k]), walk(x));
  };
  walk(doc);
  return out;
}

function mutate(text: string, m: Mutation): string {
  if (m.kind === 'truncate') return text.slice(0, m.at % (text.length + 1));
  if (m.kind === 'splice') {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.junk + text.slice(at);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    return text;
  }
  const resources = doc && typeof doc === 'object' ? ((doc as Record<string, unknown>).resources as Record<string, Record<string, unknown>> | undefined) : undefined;
  const names = resources && typeof resources === 'object' ? Object.keys(resources) : [];
  if (m.kind === 'rename-type' || m.kind === 'self-reference') {
    const name = names[m.pick % Math.max(1, names.length)];
    const r = name ? resources![name] : undefined;
    if (!r || typeof r !== 'object') return text;
    if (m.kind === 'rename-type') r.type = m.type;
    else (r.depends_on = [name]), (r.properties = { ...(r.properties as object), self: { get_attr: [name, 'x'] } });
    return stringify(doc);
  }
  const all = slots(doc);
  if (all.length === 0) return text;
  const [container, key] = all[m.pick % all.length]!;
  if (m.kind === 'drop-node') {
    if (Array.isArray(container)) container.splice(key as number, 1);
    else delete container[key as string];
  } else (container as Record<string | number, unknown>)[key] = m.value;
  return stringify(doc);
}

interface Case {
  pick: number;
  mutations: Mutation[];
  op: 'stack.validate' | 'stack.preview' | 'stack.create';
}

const aCase: fc.Arbitrary<Case> = fc.record({
  pick: fc.nat(),
  mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
  op: fc.constantFrom('stack.validate', 'stack.validate', 'stack.preview', 'stack.preview', 'stack.create'),
});

test.before(async () => {
  bed.b = await startApiBed();
});
test.after(async () => {
  await bed.b?.stop();
});

const listed = async (name: string) => {
  const l = await call(bed.b.client, 'stack.list', { filter: { name }, limit: 1000 });
  assert.ok(l.ok, JSON.stringify(l));
  return (l.result as { stacks: Array<{ name: string }> }).stacks.some((s) => s.name === name);
};

const status = async (id: string): Promise<string> => {
  const r: Reply = await call(bed.b.client, 'stack.show', { stack: id });
  return r.ok ? (r.result as { status: string }).status : r.error.code;
};

test('validate/preview/create of mutated templates: typed errors, no partial stacks', async () => {
  let n = 0;
  const outcome = { accepted: 0, refused: 0 };
  await checkProperty(
    'templates',
    aCase,
    async (c) => {
      const src = corpus[c.pick % corpus.length]!;
      const template = c.mutations.reduce(mutate, src.text);
      const what = `${c.op} of ${src.file} after ${JSON.stringify(c.mutations).slice(0, 300)}`;
      const name = `fz${++n}`;
      const before = await writeMark(bed.b.jsm);
      const r = await call(bed.b.client, c.op, c.op === 'stack.create' ? { name, template } : { template });
      const why = untypedError(r);
      assert.not.ok(why, `${why}: ${what}: ${JSON.stringify(r).slice(0, 400)}`);
      if (c.op !== 'stack.create' || !r.ok) {
        assert.is(await writeMark(bed.b.jsm), before, `${c.op} wrote state: ${what}`);
        if (c.op === 'stack.create') {
          outcome.refused++;
          assert.not.ok(await listed(name), `refused create left a stack: ${what}`);
        }
        return;
      }
      outcome.accepted++;
      const { id } = r.result as { id: string };
      const del = await call(bed.b.client, 'stack.delete', { stack: id });
      assert.ok(del.ok, `delete refused: ${JSON.stringify(del)}: ${what}`);
      await waitFor(`${name} deleted: ${what}`, async () => (await status(id)) === 'DELETE_COMPLETE' || undefined, 30_000);
      assert.not.ok(await listed(name), `deleted stack still listed: ${what}`);
      const res = await call(bed.b.client, 'resource.list', { stack: id, limit: 1000 });
      if (res.ok) {
        const left = (res.result as { resources: Array<{ name: string; status: string }> }).resources.filter((x) => x.status !== 'DELETE_COMPLETE');
        assert.equal(left, [], `resources left after delete: ${what}`);
      }
    },
    100,
  );
  console.log(`[fuzz] templates: creates ${JSON.stringify(outcome)}`);
  // Both sides of create were exercised (the corpus has templates that stay valid under some mutations).
  assert.ok(outcome.refused > 0, JSON.stringify(outcome));
  const s = await call(bed.b.client, 'engine.status', {});
  assert.ok(s.ok, `engine stopped answering: ${JSON.stringify(s)}`);
});

test.run();
