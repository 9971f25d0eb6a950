/**
 * What the template layer knows about resource types: names, and for registered types the
 * property and attribute names used to check a template before anything is deployed. Providers
 * and the engine register the full schemas of their types.
 */
export interface PropertySchema {
  readonly required?: boolean;
}

export interface ResourceTypeSchema {
  /** Known properties; undefined means any property is accepted. */
  readonly properties?: Readonly<Record<string, PropertySchema>>;
  /** Known attribute names; undefined means any attribute is accepted. */
  readonly attributes?: readonly string[];
}

export class ResourceTypeRegistry {
  private readonly schemas = new Map<string, ResourceTypeSchema>();

  /**
   * @param authoritative when true, a type that is neither registered nor a template is
   * RESOURCE_TYPE_UNKNOWN; when false (validate/preview without a cloud) any type is accepted.
   */
  constructor(readonly authoritative = false) {}

  register(type: string, schema: ResourceTypeSchema): this {
    this.schemas.set(type, schema);
    return this;
  }

  get(type: string): ResourceTypeSchema | undefined {
    return this.schemas.get(type);
  }

  has(type: string): boolean {
    return this.schemas.has(type);
  }

  types(): IterableIterator<string> {
    return this.schemas.keys();
  }
}

const props = (...names: string[]): Record<string, PropertySchema> => Object.fromEntries(names.map((n) => [n, {}]));

/** Attributes every Heat resource has. */
const BASE_ATTRIBUTES = ['show'];

/** Heat's own resource types that need no cloud (property/attribute names as in Heat). */
export const BUILTIN_RESOURCE_TYPES: Readonly<Record<string, ResourceTypeSchema>> = {
  // OS::Heat::None accepts any property and any attribute (always null).
  'OS::Heat::None': {},
  'OS::Heat::Value': { properties: { value: { required: true }, type: {} }, attributes: [...BASE_ATTRIBUTES, 'value'] },
  'OS::Heat::RandomString': {
    properties: props('length', 'sequence', 'character_classes', 'character_sequences', 'salt'),
    attributes: [...BASE_ATTRIBUTES, 'value'],
  },
  'OS::Heat::TestResource': {
    properties: props('value', 'update_replace', 'update_replace_value', 'fail', 'client_name', 'entity_name', 'wait_secs', 'action_wait_secs', 'attr_wait_secs', 'constraint_prop_secs'),
    attributes: [...BASE_ATTRIBUTES, 'output'],
  },
  'OS::Heat::ResourceGroup': {
    properties: { count: {}, index_var: {}, resource_def: { required: true }, removal_policies: {}, removal_policies_mode: {} },
  },
  'OS::Heat::Stack': { properties: { context: {}, template: { required: true }, timeout: {}, parameters: {} } },
  'OS::Heat::WaitCondition': { properties: { handle: { required: true }, timeout: { required: true }, count: {} }, attributes: [...BASE_ATTRIBUTES, 'data'] },
  'OS::Heat::WaitConditionHandle': { properties: props('signal_transport'), attributes: [...BASE_ATTRIBUTES, 'token', 'endpoint', 'curl_cli', 'signal'] },
};

/** A registry with Heat's built-in no-cloud types; pass `authoritative` for engine use. */
export function builtinTypeRegistry(authoritative = false): ResourceTypeRegistry {
  const r = new ResourceTypeRegistry(authoritative);
  for (const [type, schema] of Object.entries(BUILTIN_RESOURCE_TYPES)) r.register(type, schema);
  return r;
}
