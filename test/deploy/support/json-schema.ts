/**
 * skaffold.yaml and docker-compose.yml against their official JSON schemas (draft-07), read from the folder
 * named by BLOG_SCHEMAS_DIR (CI's machine provides it; the schemas are not part of this repository).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import formatsModule from 'ajv-formats';
import type { Data } from './files.js';

// ajv-formats is CommonJS with its plugin on `default`.
const addFormats = ((formatsModule as unknown as { default?: typeof formatsModule }).default ??
  formatsModule) as unknown as (ajv: Ajv) => Ajv;

/** The schema folder, or why the schema checks cannot run. */
export function schemasDir(): { dir: string } | { skip: string } {
  const dir = process.env.BLOG_SCHEMAS_DIR;
  if (!dir) return { skip: 'BLOG_SCHEMAS_DIR is not set (CI sets it to the folder of the official schemas)' };
  if (!existsSync(dir)) return { skip: `BLOG_SCHEMAS_DIR=${dir} does not exist` };
  return { dir };
}

const compiled = new Map<string, ValidateFunction>();

/** The validator of one schema file (compiled once: the skaffold schemas are large). */
export function compileSchema(file: string): ValidateFunction {
  const known = compiled.get(file);
  if (known) return known;
  const schema = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  // The meta-schema is draft-07 (ajv's default); its `$schema` spelling varies between the two files.
  delete schema.$schema;
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
  addFormats(ajv);
  const validate = ajv.compile(schema);
  compiled.set(file, validate);
  return validate;
}

/** The skaffold schema file for a config's apiVersion (`skaffold/v4beta11` -> skaffold-v4beta11.json). */
export function skaffoldSchemaFile(dir: string, config: Data): string {
  const version = String(config?.apiVersion ?? '').replace(/^skaffold\//, '');
  return path.join(dir, `skaffold-${version}.json`);
}

export function errorsOf(validate: ValidateFunction, data: Data): string[] {
  if (validate(data)) return [];
  return (validate.errors ?? []).map(
    (e: ErrorObject) => `${e.instancePath || '/'}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`,
  );
}
