#!/usr/bin/env node
import { toKilnError } from '@kiln/core';
import { COMMANDS } from './commands/index.js';
import { reportError } from './output.js';

const USAGE = `usage: kiln <command> [options]

commands:
${Object.values(COMMANDS)
  .map((c) => `  kiln ${c.usage}\n      ${c.summary}`)
  .join('\n')}

Commands that talk to NATS take --nats URL (default: $KILN_NATS_URL, else the URL \`kiln up\`
wrote to ./.kiln/nats-url, else nats://127.0.0.1:4222) and --tenant T (default: default).
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`kiln: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    reportError(toKilnError(e), process.argv.includes('--json'));
    process.exitCode = 1;
  },
);
