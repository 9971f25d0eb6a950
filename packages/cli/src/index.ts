export { COMMANDS, type Command } from './commands/index.js';
export { parseParameters } from './commands/template.js';
