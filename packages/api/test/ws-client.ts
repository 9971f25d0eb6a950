import WebSocket from 'ws';
import { waitFor } from '@kiln/natsd';

export type Msg = Record<string, unknown> & { type: string };
export type EventMsg = { type: 'event'; event: { seq: number; tenant: string; stack: string; resource?: string; status: string; resource_type?: string } };

/** A real web-socket client that records every message and the close frame. */
export class WsClient {
  readonly messages: Msg[] = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.messages.push(JSON.parse(d.toString()) as Msg));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static async open(url: string): Promise<WsClient> {
    const ws = new WebSocket(url);
    const c = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return c;
  }

  /** Connects, authenticates with the token as first message and waits for the welcome. */
  static async authed(base: string, token: string): Promise<WsClient> {
    const c = await WsClient.open(`${base}/events`);
    c.send({ type: 'auth', token });
    await c.next('welcome');
    return c;
  }

  send(m: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(m));
  }

  /** The first message of this type (after `from` messages already seen), waiting for it. */
  async next(type: string, from = 0, timeoutMs = 10_000): Promise<Msg> {
    return waitFor(`a '${type}' message`, () => this.messages.slice(from).find((m) => m.type === type), timeoutMs);
  }

  async waitClosed(timeoutMs = 15_000): Promise<{ code: number; reason: string }> {
    return waitFor('the socket to close', () => this.closed, timeoutMs);
  }

  events(): EventMsg['event'][] {
    return this.messages.filter((m) => m.type === 'event').map((m) => (m as unknown as EventMsg).event);
  }

  seqs(): number[] {
    return this.events().map((e) => e.seq);
  }

  close(): void {
    this.ws.terminate();
  }
}
