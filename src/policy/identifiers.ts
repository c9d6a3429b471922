/**
 * Strict schemas for every user-supplied string that may reach a policy document.
 *
 * The gateway treats some character sequences in policy XML as code, whatever the XML escaping:
 * an attribute or text value that starts with `@(` or `@{` is a C# policy expression, and `{{name}}`
 * anywhere in a document is replaced by a named value when the policy is saved. Escaping by the XML
 * builder protects the markup, not these. So identifiers that end up in policy XML (as attribute or
 * text values) are limited to letters, digits and a few punctuation characters: no `@`, `{`, `}`,
 * `(`, `<`, `&`, `"`, whitespace or `|` (the compiler's list separator). Only one identifier is ever
 * placed inside an expression: a key tier id, as a string literal ({@link TierId}).
 * Free text (names, descriptions) is never written into policy XML at all; see {@link FreeText}.
 */
import { z } from "zod";

/** Project, model, backend and tier ids: lower-case letters, digits and `_`, at most 24 characters.
 * No `-`: the compiler joins ids with `-` to build artifact ids, so `-` keeps those unambiguous.
 * Server-generated ids such as `prj_7x1k…` (24 characters) fit. */
export const IDENT = /^[a-z0-9][a-z0-9_]{0,23}$/;
export const Ident = z
  .string()
  .regex(IDENT, "must be 1-24 lower-case letters, digits or '_', starting with a letter or digit")
  .meta({ description: "Identifier: 1-24 lower-case letters, digits or '_'" });

/** Key tier ids. Unlike other identifiers, a tier id is written *inside* a policy expression: the
 * tier product's policy sets `aigov-key-tier` to the id and the project's API policy compares it as a
 * C# string literal (`… == "kp_3f9a0c12de"`, expressions.ts `tierIs`). That is safe because of the
 * {@link IDENT} character set, which this pattern keeps: lower-case letters, digits and `_` only, so
 * no `"` or `\` (which would end or escape the literal), no `@(`, `@{`, `{{`, `}}`, `<`, `&`,
 * whitespace or line breaks. Stricter than Ident in one respect: not digits only, so a tier id can
 * never equal a tier *number* ("1", "2", …), which product policies set before tiers were identified
 * by id; during the one-time republish, a product policy still carrying a number matches no tier of an
 * updated API policy (its keys get the project's per-key limits, never another tier's). The
 * expression builder checks the pattern again before it emits a literal. */
export const TIER_ID = /^(?![0-9]+$)[a-z0-9][a-z0-9_]{0,23}$/;
export const TierId = z
  .string()
  .regex(TIER_ID, "must be 1-24 lower-case letters, digits or '_', starting with a letter or digit, and not digits only")
  .meta({ description: "Key tier id: 1-24 lower-case letters, digits or '_', not digits only (e.g. kp_3f9a0c12de)" });

/** The tenant id (an Entra tenant GUID or a slug). Never written into policy XML. */
export const TenantId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "must be 1-64 letters, digits, '_' or '-'")
  .meta({ description: "Tenant id (GUID or slug)" });

/** The name clients use to address a model (the OpenAI `model` field or the Azure OpenAI deployment name). */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const ModelName = z
  .string()
  .regex(MODEL_NAME, "must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
  .meta({ description: "Model name as clients send it, e.g. gpt-4o" });

/** The provider's deployment or model name (the registry's modelName), written as a literal list entry:
 * no `|` (the list separator), no `@`, `{`, `}`, `<`, `&`, quotes or whitespace. */
export const DeploymentName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, "must be 1-128 letters, digits, '.', '_', ':', '/' or '-', starting with a letter or digit")
  .meta({ description: "Provider deployment or model name, e.g. gpt-4o-2024-08-06" });

/** A tenant's gateway key (names.ts GATEWAY_KEY). */
export const GatewayKey = z
  .string()
  .regex(/^[a-z0-9]{1,10}$/, "must be 1-10 lower-case letters or digits")
  .meta({ description: "Gateway key of a tenant: the prefix of its artifact ids" });

/** Header names the gateway is not allowed to modify (set-header). */
export const PROTECTED_HEADERS = ["connection", "content-length", "keepalive", "keep-alive", "transfer-encoding"] as const;
export const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
export const HeaderName = z
  .string()
  .regex(HEADER_NAME, "must be 1-64 letters, digits or '-', starting with a letter or digit")
  .refine((h) => !(PROTECTED_HEADERS as readonly string[]).includes(h.toLowerCase()), "the gateway cannot modify this header")
  .meta({ description: "HTTP header name (letters, digits, '-')" });

/** An allowed value for a required header. */
export const HeaderValue = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/=+-]{0,127}$/, "must be 1-128 letters, digits or . _ : / = + -")
  .meta({ description: "Literal header value" });

/** Azure region (eastus, swedencentral) or another provider's region (us-east-1, europe-west4, global). */
export const Region = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "must be 1-32 lower-case letters, digits or '-'")
  .meta({ description: "Region name, e.g. swedencentral" });

export const DataClass = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "must be 1-32 lower-case letters, digits, '_' or '-'")
  .meta({ description: "Data classification label, e.g. public, internal, confidential" });

/** Azure AI Content Safety blocklist name. */
export const BlocklistId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '_' or '-'")
  .meta({ description: "Content Safety blocklist name" });

/** A model version label used by A/B splits, e.g. 2024-08-06. */
export const VersionLabel = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, "must be 1-32 letters, digits, '.', '_' or '-'")
  .meta({ description: "Model version label, e.g. 2024-11-20" });

/** APIM named value id and display name (`^[A-Za-z0-9-._]+$`), referenced as `{{id}}`. */
export const NamedValueId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/, "must be 1-80 letters, digits, '.', '_' or '-'")
  .meta({ description: "APIM named value id (also its display name)" });

/** Custom metric namespace (llm-emit-token-metric does not accept expressions here). */
export const MetricNamespace = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 letters, digits, '.', '_' or '-'")
  .meta({ description: "Azure Monitor custom metric namespace" });

/** An https URL without user info, query, fragment or any character that could start an expression. */
export const HttpsUrl = z
  .string()
  .max(2000)
  .regex(/^https:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/, "must be an https URL without query or fragment")
  .meta({ description: "https URL" });

/** Managed-identity token audience: an https URL or an `api://` application id URI. */
export const Audience = z
  .string()
  .max(512)
  .regex(/^(https:\/\/[A-Za-z0-9.-]+(\/[A-Za-z0-9._~/-]*)?|api:\/\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*)$/, "must be an https URL or api:// URI")
  .meta({ description: "Resource (audience) for the managed-identity token, e.g. https://cognitiveservices.azure.com" });

export const Guid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, "must be a GUID")
  .meta({ description: "GUID" });

/**
 * A Key Vault secret URI. The registry pins the version, so a credential changes at the gateway with
 * the publish that ships it, never by Key Vault rotation (ADR 021); a versionless URI still compiles
 * because registry snapshots published before that decision hold them (system publishes compile those).
 */
export const KeyVaultSecretUri = z
  .string()
  .regex(
    /^https:\/\/[a-z0-9-]{3,24}\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net|microsoftazure\.de)\/secrets\/[A-Za-z0-9-]{1,127}(\/[0-9a-zA-Z]{1,64})?\/?$/,
    "must be a Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>/<version>)",
  )
  .meta({ description: "Key Vault secret identifier, with its version (the registry always pins one)" });

/** Free text (names, descriptions). It may contain anything printable; the compiler never writes it into
 * policy XML, only into artifact descriptions, which the gateway does not interpret. */
export const FreeText = (max: number) =>
  z
    .string()
    .max(max)
     
    .regex(/^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]*$/, "must not contain control characters");
