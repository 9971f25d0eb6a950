import type { Distribution } from './config.js';

/** A small seeded PRNG (sfc32): the sim's only source of randomness, so a seed replays a run. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(...parts: (string | number)[]) {
    const h = hash128(parts.join('\u0000'));
    [this.a, this.b, this.c, this.d] = h;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    let t = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    t = (t + this.d) | 0;
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Waiting time, in ms, of a Poisson process with `perHour` events per hour; Infinity if the rate is 0. */
  exponentialMs(perHour: number): number {
    if (perHour <= 0) return Infinity;
    return (-Math.log(1 - this.next()) / perHour) * 3_600_000;
  }

  sample(d: Distribution): number {
    switch (d.dist) {
      case 'fixed':
        return d.ms;
      case 'uniform':
        return d.min + (d.max - d.min) * this.next();
      case 'lognormal': {
        const v = d.median * Math.exp(d.sigma * this.normal());
        return d.max === undefined ? v : Math.min(v, d.max);
      }
    }
  }

  /** A UUID-shaped id drawn from this stream. */
  uuid(): string {
    const hex = (n: number) => Math.floor(this.next() * 0x100000000).toString(16).padStart(8, '0').slice(0, n);
    return `${hex(8)}-${hex(4)}-4${hex(3)}-${((8 + Math.floor(this.next() * 4)).toString(16))}${hex(3)}-${hex(8)}${hex(4)}`;
  }
}

function hash128(s: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < s.length; i++) {
    const k = s.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  return [(h1 ^ h2 ^ h3 ^ h4) >>> 0, (h2 ^ h1) >>> 0, (h3 ^ h1) >>> 0, (h4 ^ h1) >>> 0];
}
