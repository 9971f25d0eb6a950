import type { ResourceType } from '@kiln/engine';
import type { ResourceTypeRegistry } from '@kiln/template';

/** Registers the types' property and attribute names with the template layer, so templates are checked before deploying. */
export function registerTypeSchemas(registry: ResourceTypeRegistry, types: readonly ResourceType[]): ResourceTypeRegistry {
  for (const t of types) {
    registry.register(t.name, {
      properties: Object.fromEntries(Object.entries(t.properties).map(([k, s]) => [k, s.required ? { required: true } : {}])),
      attributes: t.attributes.includes('show') ? t.attributes : [...t.attributes, 'show'],
    });
  }
  return registry;
}
