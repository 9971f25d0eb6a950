import { NatsServer, type NatsServerOptions } from './server.js';

/** The slice of a uvu suite a fixture needs (kept structural so this package needs no uvu). */
interface SuiteHooks<C> {
  before(fn: (ctx: C) => unknown): void;
  after(fn: (ctx: C) => unknown): void;
}

/**
 * Gives a uvu suite a real nats-server: started before the first test, stopped after the last
 * (uvu runs `after` also when tests failed; the exit hook in server.ts covers a crash).
 */
export function withNatsServer<C extends { nats?: NatsServer }>(suite: SuiteHooks<C>, opts: NatsServerOptions = {}): void {
  suite.before(async (ctx) => {
    ctx.nats = await NatsServer.start(opts);
  });
  suite.after(async (ctx) => {
    await ctx.nats?.stop();
  });
}
