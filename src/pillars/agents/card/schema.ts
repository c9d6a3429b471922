import { z } from "zod";

/**
 * Zod schemas of the A2A AgentCard as v0.3 and v1.0 define it (a2aproject/A2A: `types/src/types.ts` at
 * v0.3.0; `specification/a2a.proto` at v1.0.0, in its ProtoJSON form, i.e. camelCase names, `oneof` members
 * as single-key objects). Required-ness and enums follow those sources; the bounds are ours: a card is
 * written by whoever runs the agent, and the registry stores it and shows it to approvers.
 *
 * Every schema exists twice. The strict flavour closes every object, so a field neither version knows
 * becomes an issue (the validator reports it as a warning: A2A cards carry extensions and fields of other
 * versions, and the spec tells readers to ignore unrecognised fields), and it raises the warnings that ride
 * on issues (http URLs, deprecated OAuth flows). The lenient flavour drops unknown fields and raises no
 * warnings; the validator takes its output once the strict pass found no error. Both come from one
 * factory so they cannot drift apart.
 */

export const CARD_LIMITS = {
  /** The card's JSON (UTF-8). Larger cards are refused before anything else is looked at. */
  maxBytes: 256 * 1024,
  /** Object/array nesting of the whole card (extension params are free-form JSON). */
  maxDepth: 32,
  maxSkills: 100,
  maxInterfaces: 20,
  maxSecuritySchemes: 32,
  maxSecurityRequirements: 32,
  maxExtensions: 32,
  maxSignatures: 10,
  maxTags: 50,
  maxExamples: 50,
  maxModes: 50,
  maxScopes: 100,
  maxNameLength: 256,
  maxDescriptionLength: 16_384,
  maxSkillDescriptionLength: 8_192,
  maxExampleLength: 4_096,
  maxUrlLength: 2_048,
  maxShortText: 256,
  maxProtectedHeaderLength: 16_384,
  maxSignatureLength: 8_192,
} as const;

/** The bindings the spec names as core (v1.0 `protocol_binding`, v0.3 `TransportProtocol`); both leave the field open. */
export const CORE_BINDINGS = ["JSONRPC", "GRPC", "HTTP+JSON"] as const;
export type ProtocolBinding = (typeof CORE_BINDINGS)[number];

/**
 * What a schema hangs on a custom issue: the finding code it becomes, and "warning" for issues that must
 * not make the card invalid. Issues without params are errors whose code follows from the zod issue.
 */
export interface CardIssueParams {
  code?: string;
  severity?: "warning";
}

const B64URL = /^[A-Za-z0-9_-]+$/;
/** "1.0", "0.3", and "1.0.1" (patch versions are tolerated with a warning by the validator). */
const PROTOCOL_VERSION = /^\d{1,4}\.\d{1,4}(\.\d{1,4})?$/;

function cardSchemas(object: typeof z.object, strict: boolean) {
  const issue = (ctx: z.RefinementCtx, message: string, params: CardIssueParams) => ctx.addIssue({ code: "custom", message, params });
  const warn = (ctx: z.RefinementCtx, message: string, code: string) => {
    if (strict) issue(ctx, message, { code, severity: "warning" });
  };

  const Text = (max: number) => z.string().max(max);
  const Required = (max: number) => z.string().min(1).max(max);
  const Short = Text(CARD_LIMITS.maxShortText);
  const Name = Required(CARD_LIMITS.maxShortText);
  const Url = z
    .string()
    .max(CARD_LIMITS.maxUrlLength)
    .superRefine((value, ctx) => {
      const url = URL.parse(value);
      if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || !url.hostname) {
        issue(ctx, "must be an absolute http(s) URL", { code: "card_invalid_url" });
      } else if (url.username || url.password) {
        // A card is public: credentials in one of its URLs are leaked credentials.
        issue(ctx, "must not carry credentials", { code: "card_invalid_url" });
      } else if (url.protocol === "http:") {
        warn(ctx, "uses http: the spec expects HTTPS outside development", "card_url_not_https");
      }
    });
  const Modes = z.array(Short).max(CARD_LIMITS.maxModes);
  const Scopes = boundedRecord(Short, Text(CARD_LIMITS.maxExampleLength), CARD_LIMITS.maxScopes, "scopes");
  const FreeJson = z.record(z.string(), z.unknown());

  function boundedRecord<K extends z.core.$ZodRecordKey, V extends z.ZodType>(key: K, value: V, max: number, what: string) {
    return z.record(key, value).superRefine((record, ctx) => {
      if (Object.keys(record).length > max) issue(ctx, `has more than ${max} ${what}`, { code: "card_limit_exceeded" });
    });
  }
  /** A ProtoJSON `oneof`: exactly one of the members is set. */
  function oneOf(record: Record<string, unknown>, members: readonly string[], ctx: z.RefinementCtx): void {
    const set = members.filter((m) => record[m] !== undefined);
    if (set.length !== 1) issue(ctx, `must set exactly one of ${members.join(", ")} (found ${set.length === 0 ? "none" : set.join(", ")})`, { code: "card_invalid_field" });
  }

  const Provider = object({ organization: Required(CARD_LIMITS.maxShortText), url: Url });
  const Signature = object({
    protected: z.string().min(1).max(CARD_LIMITS.maxProtectedHeaderLength).regex(B64URL, "must be base64url"),
    signature: z.string().min(1).max(CARD_LIMITS.maxSignatureLength).regex(B64URL, "must be base64url"),
    header: FreeJson.optional(),
  });
  const Extension = object({
    uri: Required(CARD_LIMITS.maxUrlLength),
    description: Text(CARD_LIMITS.maxExampleLength).optional(),
    required: z.boolean().optional(),
    params: FreeJson.optional(),
  });
  const Extensions = z.array(Extension).max(CARD_LIMITS.maxExtensions);
  const SkillCommon = {
    id: Name,
    name: Name,
    description: Text(CARD_LIMITS.maxSkillDescriptionLength),
    tags: z.array(Required(128)).max(CARD_LIMITS.maxTags),
    examples: z.array(Text(CARD_LIMITS.maxExampleLength)).max(CARD_LIMITS.maxExamples).optional(),
    inputModes: Modes.optional(),
    outputModes: Modes.optional(),
  };
  const CardCommon = {
    name: Required(CARD_LIMITS.maxNameLength),
    description: Text(CARD_LIMITS.maxDescriptionLength),
    version: Required(128),
    provider: Provider.optional(),
    documentationUrl: Url.optional(),
    iconUrl: Url.optional(),
    defaultInputModes: Modes,
    defaultOutputModes: Modes,
    signatures: z.array(Signature).max(CARD_LIMITS.maxSignatures).optional(),
  };

  // ---- v1.0 (a2a.proto) ----
  const AuthorizationCodeFlow = object({ authorizationUrl: Url, tokenUrl: Url, refreshUrl: Url.optional(), scopes: Scopes, pkceRequired: z.boolean().optional() });
  const ClientCredentialsFlow = object({ tokenUrl: Url, refreshUrl: Url.optional(), scopes: Scopes });
  const DeviceCodeFlow = object({ deviceAuthorizationUrl: Url, tokenUrl: Url, refreshUrl: Url.optional(), scopes: Scopes });
  // Deprecated in v1.0, where every field of theirs is optional.
  const ImplicitFlowV1 = object({ authorizationUrl: Url.optional(), refreshUrl: Url.optional(), scopes: Scopes.optional() });
  const PasswordFlowV1 = object({ tokenUrl: Url.optional(), refreshUrl: Url.optional(), scopes: Scopes.optional() });
  const FLOWS_V1 = ["authorizationCode", "clientCredentials", "implicit", "password", "deviceCode"] as const;
  const OAuthFlowsV1 = object({
    authorizationCode: AuthorizationCodeFlow.optional(),
    clientCredentials: ClientCredentialsFlow.optional(),
    implicit: ImplicitFlowV1.optional(),
    password: PasswordFlowV1.optional(),
    deviceCode: DeviceCodeFlow.optional(),
  }).superRefine((flows, ctx) => {
    oneOf(flows, FLOWS_V1, ctx);
    if (flows.implicit || flows.password) warn(ctx, "uses a deprecated OAuth flow (implicit or password)", "card_deprecated_oauth_flow");
  });
  const SCHEMES_V1 = ["apiKeySecurityScheme", "httpAuthSecurityScheme", "oauth2SecurityScheme", "openIdConnectSecurityScheme", "mtlsSecurityScheme"] as const;
  const SecuritySchemeV1 = object({
    apiKeySecurityScheme: object({ description: Text(CARD_LIMITS.maxExampleLength).optional(), location: z.enum(["query", "header", "cookie"]), name: Name }).optional(),
    httpAuthSecurityScheme: object({ description: Text(CARD_LIMITS.maxExampleLength).optional(), scheme: Name, bearerFormat: Short.optional() }).optional(),
    oauth2SecurityScheme: object({ description: Text(CARD_LIMITS.maxExampleLength).optional(), flows: OAuthFlowsV1, oauth2MetadataUrl: Url.optional() }).optional(),
    openIdConnectSecurityScheme: object({ description: Text(CARD_LIMITS.maxExampleLength).optional(), openIdConnectUrl: Url }).optional(),
    mtlsSecurityScheme: object({ description: Text(CARD_LIMITS.maxExampleLength).optional() }).optional(),
  }).superRefine((scheme, ctx) => oneOf(scheme, SCHEMES_V1, ctx));
  // `SecurityRequirement { map<string, StringList> schemes }`: {"schemes": {"oauth": {"list": ["read"]}}}.
  const SecurityRequirementV1 = object({
    schemes: boundedRecord(Name, object({ list: z.array(Short).max(CARD_LIMITS.maxScopes).optional() }), CARD_LIMITS.maxSecuritySchemes, "schemes").optional(),
  });
  const SecurityRequirementsV1 = z.array(SecurityRequirementV1).max(CARD_LIMITS.maxSecurityRequirements);
  const AgentInterfaceV1 = object({
    url: Url,
    protocolBinding: Required(64),
    tenant: Short.optional(),
    protocolVersion: z.string().regex(PROTOCOL_VERSION, "must be Major.Minor, e.g. 1.0"),
  });
  const AgentCardV1 = object({
    ...CardCommon,
    supportedInterfaces: z.array(AgentInterfaceV1).min(1, "must list at least one interface").max(CARD_LIMITS.maxInterfaces),
    capabilities: object({
      streaming: z.boolean().optional(),
      pushNotifications: z.boolean().optional(),
      extensions: Extensions.optional(),
      extendedAgentCard: z.boolean().optional(),
    }),
    securitySchemes: boundedRecord(Name, SecuritySchemeV1, CARD_LIMITS.maxSecuritySchemes, "security schemes").optional(),
    securityRequirements: SecurityRequirementsV1.optional(),
    skills: z.array(object({ ...SkillCommon, securityRequirements: SecurityRequirementsV1.optional() })).max(CARD_LIMITS.maxSkills),
  });

  // ---- v0.3 (types.ts) ----
  const ImplicitFlowV03 = object({ authorizationUrl: Url, refreshUrl: Url.optional(), scopes: Scopes });
  const PasswordFlowV03 = object({ tokenUrl: Url, refreshUrl: Url.optional(), scopes: Scopes });
  const OAuthFlowsV03 = object({
    authorizationCode: object({ authorizationUrl: Url, tokenUrl: Url, refreshUrl: Url.optional(), scopes: Scopes }).optional(),
    clientCredentials: ClientCredentialsFlow.optional(),
    implicit: ImplicitFlowV03.optional(),
    password: PasswordFlowV03.optional(),
  }).superRefine((flows, ctx) => {
    // OpenAPI's Flows object: any number of flows, but an oauth2 scheme without one cannot be used.
    if (!flows.authorizationCode && !flows.clientCredentials && !flows.implicit && !flows.password) {
      issue(ctx, "must declare at least one flow", { code: "card_invalid_field" });
    }
  });
  const description = Text(CARD_LIMITS.maxExampleLength).optional();
  const SecuritySchemeV03 = z.discriminatedUnion("type", [
    object({ type: z.literal("apiKey"), description, in: z.enum(["query", "header", "cookie"]), name: Name }),
    object({ type: z.literal("http"), description, scheme: Name, bearerFormat: Short.optional() }),
    object({ type: z.literal("oauth2"), description, flows: OAuthFlowsV03, oauth2MetadataUrl: Url.optional() }),
    object({ type: z.literal("openIdConnect"), description, openIdConnectUrl: Url }),
    object({ type: z.literal("mutualTLS"), description }),
  ]);
  // OpenAPI's Security Requirement Object: {"oauth": ["read"], "mtls": []}.
  const SecurityRequirementV03 = boundedRecord(Name, z.array(Short).max(CARD_LIMITS.maxScopes), CARD_LIMITS.maxSecuritySchemes, "schemes");
  const SecurityRequirementsV03 = z.array(SecurityRequirementV03).max(CARD_LIMITS.maxSecurityRequirements);
  const AgentCardV03 = object({
    ...CardCommon,
    protocolVersion: Required(32),
    url: Url,
    preferredTransport: Required(64).optional(),
    // The main url is one interface, so the additional ones get one fewer.
    additionalInterfaces: z.array(object({ url: Url, transport: Required(64) })).max(CARD_LIMITS.maxInterfaces - 1).optional(),
    capabilities: object({
      streaming: z.boolean().optional(),
      pushNotifications: z.boolean().optional(),
      stateTransitionHistory: z.boolean().optional(),
      extensions: Extensions.optional(),
    }),
    securitySchemes: boundedRecord(Name, SecuritySchemeV03, CARD_LIMITS.maxSecuritySchemes, "security schemes").optional(),
    security: SecurityRequirementsV03.optional(),
    skills: z.array(object({ ...SkillCommon, security: SecurityRequirementsV03.optional() })).max(CARD_LIMITS.maxSkills),
    supportsAuthenticatedExtendedCard: z.boolean().optional(),
  });

  return { AgentCardV1, AgentCardV03, SecurityRequirementsV03 };
}

/**
 * The strict flavour closes objects with z.strictObject. Its static type is z.object's: the two differ only
 * in what happens to unknown keys at run time (an issue rather than dropping them), never in the output type.
 */
const strictObject = z.strictObject as unknown as typeof z.object;

/** For the validator: unknown fields and warnings surface as issues (see CardIssueParams). */
export const strictCardSchemas = cardSchemas(strictObject, true);

const lenient = cardSchemas(z.object, false);
/** A v1.0 AgentCard, unknown fields dropped. */
export const AgentCardV1Schema = lenient.AgentCardV1;
/** A v0.3 AgentCard, unknown fields dropped. */
export const AgentCardV03Schema = lenient.AgentCardV03;
/** v0.3's security requirement list, which v1.0 cards written for both versions still carry as `security`. */
export const SecurityRequirementsV03Schema = lenient.SecurityRequirementsV03;

export type AgentCardV1 = z.output<typeof AgentCardV1Schema>;
export type AgentCardV03 = z.output<typeof AgentCardV03Schema>;
export type SecuritySchemeV1 = NonNullable<AgentCardV1["securitySchemes"]>[string];
export type SecuritySchemeV03 = NonNullable<AgentCardV03["securitySchemes"]>[string];
