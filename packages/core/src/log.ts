import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Structured logs (pino, JSON lines on stderr so stdout stays for command output). The level
 * comes from KILN_LOG_LEVEL; tests default to `warn` to keep their output readable.
 */
export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level = process.env.KILN_LOG_LEVEL ?? opts.level ?? 'info';
  return pino({ name, ...opts, level }, pino.destination({ fd: 2, sync: false }));
}
