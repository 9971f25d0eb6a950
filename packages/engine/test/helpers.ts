import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Engine, ResourceType, StackInfo } from '../src/index.js';
import { waitFor } from '@kiln/natsd';

/** Waits until the stack is at `gen` (or newer) and no longer converging. */
export function settled(engine: Engine, id: string, gen: number, timeoutMs = 60_000): Promise<StackInfo> {
  return waitFor(
    `stack ${id} gen ${gen} to settle`,
    async () => {
      const s = await engine.getStack(id);
      return s.generation >= gen && s.status !== 'CONVERGING' ? s : null;
    },
    timeoutMs,
    100,
  );
}

const workerScript = fileURLToPath(new URL('./fixtures/worker.js', import.meta.url));

/** Starts an engine process and waits for its "ready". */
export function spawnWorker(url: string, nodeId: string, partitions = 16, env: Record<string, string> = {}): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [workerScript, url, nodeId, String(partitions)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, KILN_LOG_LEVEL: process.env.KILN_LOG_LEVEL ?? 'warn', ...env },
    });
    const t = setTimeout(() => reject(new Error(`worker ${nodeId} not ready`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`worker ${nodeId} exited with ${code}`));
    });
  });
}

export function kill(child: ChildProcess, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(sig);
  });
}

/** A template resource `app` holding an AutoScalingGroup `asg` and its policy `up`. */
export const nestedAsg = {
  template: { heat_template_version: '2016-10-14', resources: { app: { type: 'My::App', properties: { tag: 'a' } } } },
  environment: { resource_registry: { 'My::App': 'app.yaml' } },
  files: {
    'app.yaml': JSON.stringify({
      heat_template_version: '2016-10-14',
      parameters: { tag: { type: 'string' } },
      resources: {
        asg: { type: 'OS::Heat::AutoScalingGroup', properties: { min_size: 1, max_size: 5, resource: { type: 'OS::Heat::TestResource', properties: { value: { get_param: 'tag' } } } } },
        up: { type: 'OS::Heat::ScalingPolicy', properties: { auto_scaling_group_id: { get_resource: 'asg' }, adjustment_type: 'change_in_capacity', scaling_adjustment: 1 } },
      },
    }),
  },
};

/** A task type that does nothing (reducer tests that only need the kind and name; `attribute` maps attributes). */
export const taskType = (name: string, attribute?: ResourceType['attribute']): ResourceType => ({
  kind: 'task',
  name,
  properties: {},
  attributes: [],
  anyProperties: true,
  create: async () => ({ physicalId: null, attrs: {} }),
  update: async () => ({ physicalId: null, attrs: {} }),
  delete: async () => undefined,
  classify: () => ({ code: 'INTERNAL', message: 'x', transient: false }),
  ...(attribute ? { attribute } : {}),
});
