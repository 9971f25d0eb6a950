import { parseArgs } from 'node:util';
import { KilnError, toKilnError } from '@kiln/core';
import { buildStack, builtinTypeRegistry, loadStackRequest, previewStack, validateResponse, type StackDefinition } from '@kiln/template';
import { printJson, reportError } from '../output.js';
import type { Command } from './index.js';

const OPTIONS = {
  template: { type: 'string', short: 't' },
  environment: { type: 'string', short: 'e', multiple: true },
  parameter: { type: 'string', short: 'P', multiple: true },
  json: { type: 'boolean' },
  'show-nested': { type: 'boolean' },
  'stack-name': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** heatclient's format_parameters: `-P a=1 -P b=2` or `-P "a=1;b=2"`. */
export function parseParameters(raw: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const items = raw.length === 1 && raw[0]!.includes(';') ? raw[0]!.split(';') : raw;
  for (const item of items) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) throw new KilnError('REQUEST_INVALID', `Malformed parameter(${item}). Use the key=value format.`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

interface TemplateArgs {
  json: boolean;
  showNested: boolean;
  stack: () => StackDefinition;
}

function parse(args: string[], usage: string, validateValues: boolean): TemplateArgs | number {
  let values;
  try {
    values = parseArgs({ args, options: OPTIONS, allowPositionals: false }).values;
  } catch (e) {
    throw new KilnError('REQUEST_INVALID', `${(e as Error).message}\nusage: kiln ${usage}`);
  }
  if (values.help) {
    process.stdout.write(`usage: kiln ${usage}\n`);
    return 0;
  }
  const template = values.template;
  if (!template) throw new KilnError('REQUEST_INVALID', `the template (-t) is required\nusage: kiln ${usage}`);
  const params = parseParameters(values.parameter);
  return {
    json: values.json ?? false,
    showNested: values['show-nested'] ?? false,
    stack: () => {
      const request = loadStackRequest(template, values.environment ?? []);
      const stackName = values['stack-name'] ?? 'preview';
      return buildStack(request, { params, validateValues, types: builtinTypeRegistry(), identity: { stackName } });
    },
  };
}

async function runTemplateCommand(args: string[], usage: string, validateValues: boolean, body: (a: TemplateArgs) => void): Promise<number> {
  let parsed: TemplateArgs | number | undefined;
  try {
    parsed = parse(args, usage, validateValues);
    if (typeof parsed === 'number') return parsed;
    body(parsed);
    return 0;
  } catch (e) {
    reportError(toKilnError(e), typeof parsed === 'object' ? parsed.json : args.includes('--json'));
    return 1;
  }
}

const VALIDATE_USAGE = 'validate -t TEMPLATE [-e ENV ...] [-P key=value ...] [--show-nested] [--json]';
const PREVIEW_USAGE = 'preview -t TEMPLATE [-e ENV ...] [-P key=value ...] --json';

export const validateCommand: Command = {
  usage: VALIDATE_USAGE,
  summary: "check a template; print its parameters (Heat's template-validate)",
  run: (args) =>
    runTemplateCommand(args, VALIDATE_USAGE, false, (a) => {
      const result = validateResponse(a.stack(), { showNested: a.showNested });
      if (a.json) printJson(result);
      else {
        const params = Object.keys(result.Parameters as Record<string, unknown>);
        process.stdout.write(`template is valid: ${String(result.Description).trim()}\nparameters: ${params.length ? params.join(', ') : '(none)'}\n`);
      }
    }),
};

export const previewCommand: Command = {
  usage: PREVIEW_USAGE,
  summary: 'resolve properties and outputs without deploying',
  // Preview always reports errors as JSON: its output is meant for programs.
  run: (args) =>
    runTemplateCommand([...args, ...(args.includes('--json') ? [] : ['--json'])], PREVIEW_USAGE, true, (a) => {
      printJson(previewStack(a.stack()));
    }),
};
