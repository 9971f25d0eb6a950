import { apiCommand, engineCommand, gatewayCommand, simCloudCommand } from './components.js';
import { resourceCommand, stackCommand } from './stack.js';
import { previewCommand, validateCommand } from './template.js';
import { upCommand } from './up.js';

/** One subcommand of `kiln`: it parses its own options and returns the exit code. */
export interface Command {
  readonly usage: string;
  readonly summary: string;
  run(args: string[]): Promise<number>;
}

export const COMMANDS: Record<string, Command> = {
  up: upCommand,
  stack: stackCommand,
  resource: resourceCommand,
  validate: validateCommand,
  preview: previewCommand,
  engine: engineCommand,
  api: apiCommand,
  gateway: gatewayCommand,
  'sim-cloud': simCloudCommand,
};
