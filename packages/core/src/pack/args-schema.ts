import type { ArgSpec, ListItemSpec, ValueSpec } from './types.js';

/** A JSON Schema object (draft 2020-12 subset). */
export type ArgsJsonSchema = Record<string, unknown>;

function valueSchema(spec: ValueSpec | ListItemSpec): ArgsJsonSchema {
  switch (spec.type) {
    case 'string': {
      const s: ArgsJsonSchema = { type: 'string', minLength: spec.min_length, maxLength: spec.max_length };
      if (spec.enum !== undefined) s['enum'] = [...spec.enum];
      if (spec.pattern !== undefined) s['pattern'] = `^(?:${spec.pattern})$`;
      return s;
    }
    case 'integer':
      return { type: 'integer', minimum: spec.min, maximum: spec.max };
    case 'boolean':
      return { type: 'boolean' };
    case 'duration':
      return {
        anyOf: [
          { type: 'integer', minimum: spec.min, maximum: spec.max },
          { type: 'string', pattern: '^([0-9]+[smhd])+$|^[0-9]+$' },
        ],
        description: `duration: whole seconds or text like 30s, 5m, 1h30m (between ${spec.min}s and ${spec.max}s)`,
      };
    case 'path': {
      const s: ArgsJsonSchema = { type: 'string', pattern: '^/' };
      const notes = [
        spec.allow.length > 0 ? `under ${spec.allow.join(', ')}` : '',
        spec.deny.length > 0 ? `not under ${spec.deny.join(', ')}` : '',
      ]
        .filter((x) => x !== '')
        .join('; ');
      s['description'] = `absolute path${notes === '' ? '' : ` (${notes}; checked after symlink resolution)`}`;
      return s;
    }
    case 'list':
      return { type: 'array', items: valueSchema(spec.items), minItems: spec.min_items, maxItems: spec.max_items };
  }
}

/**
 * The JSON Schema of an action's arguments, for agent clients (MCP) and editors. Advisory:
 * the runner's validation (`validateArgs`) stays authoritative, including path resolution.
 */
export function argsJsonSchema(args: Readonly<Record<string, ArgSpec>>): ArgsJsonSchema {
  const properties: Record<string, ArgsJsonSchema> = {};
  const required: string[] = [];
  for (const [name, spec] of Object.entries(args)) {
    const s = valueSchema(spec);
    if (spec.description !== undefined) {
      s['description'] =
        s['description'] === undefined ? spec.description : `${spec.description} (${String(s['description'])})`;
    }
    if (spec.default !== undefined) s['default'] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
    properties[name] = s;
    if (spec.required) required.push(name);
  }
  return { type: 'object', properties, ...(required.length > 0 ? { required } : {}), additionalProperties: false };
}
