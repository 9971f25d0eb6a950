import { closeSync, existsSync, fdatasync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '@kiln/core';

/**
 * When the log reaches the disk. Every record is written (write(2)) before the API answers, so a
 * killed process never loses an acknowledged change; fsync only matters for a machine crash.
 * `interval` syncs at most every 100 ms, `always` before each answer, `never` leaves it to the OS.
 */
export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface Snapshot<S> {
  version: 1;
  /** The last sequence number folded into `state`. */
  seq: number;
  state: S;
}

/**
 * Write-ahead log of JSON lines plus a snapshot, in one directory. `snapshot.json` holds the state
 * up to some sequence; `wal.jsonl` holds the records after it. Records carry `seq`, so a crash
 * between writing a snapshot and truncating the log only replays records the snapshot skips.
 */
export class Wal<S, R extends { seq: number }> {
  private fd: number;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing = false;
  private closed = false;
  /** Serialised records not yet written. */
  private readonly pending: string[] = [];
  /** Records appended since the last snapshot, to decide when to compact. */
  records = 0;

  constructor(
    private readonly dir: string,
    private readonly fsync: FsyncPolicy = 'interval',
  ) {
    mkdirSync(dir, { recursive: true });
    lockDir(dir);
    this.fd = openSync(join(dir, 'wal.jsonl'), 'a');
  }

  /** The snapshot (if any) and the log records after it, in order. A torn last line is dropped. */
  load(): { snapshot: Snapshot<S> | undefined; records: R[] } {
    const snapPath = join(this.dir, 'snapshot.json');
    let snapshot: Snapshot<S> | undefined;
    if (existsSync(snapPath)) {
      try {
        snapshot = JSON.parse(readFileSync(snapPath, 'utf8')) as Snapshot<S>;
      } catch (e) {
        throw new KilnError('DECODE_FAILED', `cannot read sim-cloud snapshot: ${(e as Error).message}`, { path: snapPath });
      }
    }
    const after = snapshot?.seq ?? 0;
    const records: R[] = [];
    const lines = readFileSync(join(this.dir, 'wal.jsonl'), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      let rec: R;
      try {
        rec = JSON.parse(line) as R;
      } catch (e) {
        // Only the last line can be torn by a crash mid-write; anything else is corruption.
        if (lines.slice(i + 1).every((l) => l === '')) break;
        throw new KilnError('DECODE_FAILED', `corrupt sim-cloud log line ${i + 1}: ${(e as Error).message}`, { path: join(this.dir, 'wal.jsonl') });
      }
      if (rec.seq > after) records.push(rec);
    }
    this.records = records.length;
    return { snapshot, records };
  }

  /**
   * Buffers a record; `flush()` writes the buffer with one write(2). The owner flushes before it
   * answers (an acknowledged change is on its way to disk before the answer is) and once per tick,
   * so the records of one call or one timer round cost one system call.
   */
  append(rec: R): void {
    this.pending.push(JSON.stringify(rec));
    this.records++;
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! + '\n' : this.pending.join('\n') + '\n';
    this.pending.length = 0;
    writeSync(this.fd, text);
    if (this.fsync === 'always') fdatasyncSync(this.fd);
    else if (this.fsync === 'interval') {
      this.dirty = true;
      this.syncTimer ??= setTimeout(() => this.syncSoon(), 100);
    }
  }

  /** Interval sync off the event loop (the thread pool's fdatasync), one at a time. */
  private syncSoon(): void {
    this.syncTimer = undefined;
    if (!this.dirty || this.syncing || this.closed) return;
    this.dirty = false;
    this.syncing = true;
    fdatasync(this.fd, () => {
      this.syncing = false;
      // Records written while this sync ran wait for the next one.
      if (this.dirty && !this.closed) this.syncTimer ??= setTimeout(() => this.syncSoon(), 100);
    });
  }

  /** Writes `state` (current up to `seq`) as the new snapshot and empties the log. */
  compact(seq: number, state: S): void {
    const snap: Snapshot<S> = { version: 1, seq, state };
    const tmp = join(this.dir, 'snapshot.json.tmp');
    writeFileSync(tmp, JSON.stringify(snap));
    // Buffered records are covered by the snapshot.
    this.pending.length = 0;
    const tfd = openSync(tmp, 'r+');
    fsyncSync(tfd);
    closeSync(tfd);
    renameSync(tmp, join(this.dir, 'snapshot.json'));
    const dfd = openSync(this.dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
    ftruncateSync(this.fd, 0);
    this.records = 0;
  }

  close(): void {
    this.flush();
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.fsync !== 'never') fdatasyncSync(this.fd);
    closeSync(this.fd);
    rmSync(join(this.dir, 'LOCK'), { force: true });
  }
}

/** Two sims appending to one log would corrupt it: the directory holds the owner's pid, and a dead owner's lock is taken over. */
function lockDir(dir: string): void {
  const lock = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number(readFileSync(lock, 'utf8').trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new KilnError('CONFLICT', `state directory is in use by sim-cloud process ${owner}`, { path: dir });
    }
    rmSync(lock, { force: true });
  }
  throw new KilnError('CONFLICT', 'cannot lock the state directory', { path: dir });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
