/** The `x-secret` expansion of a schema: `<name>_file` and `<name>_command` accepted in place of `<name>`. */
import type { JsonSchema } from '../plugins/contract';

/**
 * Rewrites `"x-secret": true` properties so that `<name>_file` and `<name>_command` are
 * accepted in their place (at most one of the three), including where `<name>` is required.
 */
export function expandSecrets(schema: JsonSchema): JsonSchema {
  if (!schema || typeof schema !== 'object') return schema;
  const out: JsonSchema = { ...schema };
  for (const key of ['items', 'additionalProperties', 'then', 'else', 'if', 'not']) {
    if (out[key] && typeof out[key] === 'object' && !Array.isArray(out[key])) out[key] = expandSecrets(out[key] as JsonSchema);
  }
  for (const key of ['allOf', 'anyOf', 'oneOf']) {
    if (Array.isArray(out[key])) out[key] = (out[key] as JsonSchema[]).map(expandSecrets);
  }
  if (out.properties && typeof out.properties === 'object') {
    const props: Record<string, JsonSchema> = {};
    const secretNames: string[] = [];
    for (const [name, sub] of Object.entries(out.properties as Record<string, JsonSchema>)) {
      props[name] = expandSecrets(sub);
      if (sub && sub['x-secret'] === true) {
        secretNames.push(name);
        props[`${name}_file`] = {
          type: 'string',
          minLength: 1,
          'x-path': true,
          'x-secret-source': 'file',
          description: `a file holding ${name} (read at start; should not be readable by group or others)`,
        };
        props[`${name}_command`] = {
          type: ['string', 'array'],
          items: { type: 'string' },
          minLength: 1,
          'x-secret-source': 'command',
          description: `a command that prints ${name} (run without a shell)`,
        };
      }
    }
    out.properties = props;
    if (secretNames.length) {
      const required = Array.isArray(out.required) ? (out.required as string[]) : [];
      const allOf = Array.isArray(out.allOf) ? [...(out.allOf as JsonSchema[])] : [];
      for (const name of secretNames) {
        const variants = [name, `${name}_file`, `${name}_command`];
        // at most one way of giving it
        allOf.push({
          not: {
            anyOf: [
              { required: [variants[0], variants[1]] },
              { required: [variants[0], variants[2]] },
              { required: [variants[1], variants[2]] },
            ],
          },
          'x-doc': `one-of:${variants.join(',')}`,
        });
        if (required.includes(name))
          allOf.push({ anyOf: variants.map((v) => ({ required: [v] })), 'x-doc': `required:${variants.join(',')}` });
      }
      out.required = required.filter((r) => !secretNames.includes(r));
      if ((out.required as string[]).length === 0) delete out.required;
      out.allOf = allOf;
    }
  }
  return out;
}
