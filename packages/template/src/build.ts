import { Environment } from './environment.js';
import type { StackRequest } from './loader.js';
import { StackDefinition, type StackOptions } from './stack.js';
import { Template } from './template.js';

/** Template + environment + files (a request) into a validated StackDefinition. */
export function buildStack(request: StackRequest, opts: Omit<StackOptions, 'environment' | 'files'> = {}): StackDefinition {
  const template = Template.from(request.template);
  return new StackDefinition(template, { ...opts, environment: new Environment(request.environment), files: request.files });
}
