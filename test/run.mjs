#!/usr/bin/env node
// Runs every compiled uvu suite, each in its own process group (a suite that hangs or dies
// takes its nats-server children with it), a few at a time, and ends with the line
// "N passed, N failed" counted over test cases.
import { spawn } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const jobs = Number(process.env.KILN_TEST_JOBS || 2);
const timeoutMs = Number(process.env.KILN_TEST_TIMEOUT_MS || 10 * 60_000);
const filter = process.argv.slice(2);

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) walk(join(root, 'packages', pkg, 'dist', 'test'), files);
walk(join(root, 'test', 'dist'), files);
const selected = files.filter((f) => filter.length === 0 || filter.some((s) => f.includes(s))).sort();
if (selected.length === 0) {
  console.error('no compiled test files found: run `npm run build` first');
  process.exit(1);
}

let passed = 0;
let failed = 0;
const failures = [];

function runOne(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: root,
      detached: true,
      env: { KILN_LOG_LEVEL: 'warn', ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[test/run] timed out after ${timeoutMs} ms\n`;
      try { process.kill(-child.pid, 'SIGKILL'); } catch {}
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Reap anything the suite left behind (servers, engines) in its process group.
      try { process.kill(-child.pid, 'SIGKILL'); } catch {}
      const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const ok = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const name = relative(root, file);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (code === 0 && total > 0 && ok === total) {
        passed += ok;
        failed += total - ok;
        console.log(`ok   ${name} (${ok}/${total}, ${secs}s)`);
      } else {
        passed += ok;
        failed += Math.max(1, total - ok);
        failures.push(name);
        console.log(`FAIL ${name} (exit ${code ?? signal}, ${ok}/${total}, ${secs}s)\n${out}`);
      }
      resolve();
    });
  });
}

const queue = [...selected];
await Promise.all(
  Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    while (queue.length) await runOne(queue.shift());
  }),
);
if (failures.length) console.log(`\nfailed suites:\n  ${failures.join('\n  ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
