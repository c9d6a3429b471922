/**
 * Backend artifacts: one Single backend per model endpoint (with the model's circuit breaker), one
 * Pool per (project, model) — or per version of an A/B split — with the endpoints' priority and
 * weight, the Key Vault-backed named values their credential headers reference, and the tenant-wide
 * service backends the GenAI policies call (content safety, embeddings).
 */
import { artifactRef, type BackendArtifact, type CircuitBreakerRule, type NamedValueArtifact } from "../../ports/gateway.js";
import { MAX_POOL_SIZE, type ModelBackend, type PolicyModel, type PolicyProject } from "../input.js";
import { type ControlId, type EffectiveSettings } from "../settings.js";
import { type ScopeRef, type Why } from "../xml.js";
import { byCodePoint, type Collector, invalid, TENANT } from "./collector.js";

/** Emits the Single backends of a pool and the pool itself; returns the pool id. */
export function pool(
  c: Collector,
  project: PolicyProject,
  model: PolicyModel,
  eff: EffectiveSettings,
  members: ModelBackend[],
  versionIndex?: number,
  version?: string,
): string {
  const pid = project.id;
  const mid = model.id;
  const id = c.n.pool(pid, mid, versionIndex);
  const label = `${project.name} / ${model.displayName ?? model.name}`;
  const fo = eff.failover;
  const routing: Why = { control: "routing", scope: { level: "model", projectId: pid, modelId: mid } };
  let circuitBreaker: { rules: CircuitBreakerRule[] } | undefined;
  if (fo) {
    const w = c.why("failover", fo, pid, mid);
    c.requireTier("failover", "backend circuit breakers", w);
    const cb = fo.value.circuitBreaker;
    circuitBreaker = {
      rules: [
        {
          name: "aigov-breaker",
          failureCondition: { count: cb.failureCount, interval: cb.failureInterval, statusCodeRanges: cb.statusCodes.map((r) => ({ min: r.min, max: r.max })) },
          tripDuration: cb.tripDuration,
          acceptRetryAfter: cb.acceptRetryAfter,
        },
      ],
    };
  }
  for (const b of members) {
    const backend: BackendArtifact = {
      kind: "backend",
      id: c.n.backend(b.id),
      type: "Single",
      url: backendUrl(b.url, model),
      description: `${label} (${b.region})`,
    };
    if (circuitBreaker) backend.circuitBreaker = circuitBreaker;
    if (b.auth.type === "keyVaultSecret") {
      const nv = keyVaultNamedValue(c, b.auth, routing.scope);
      backend.credentialHeaders = { [b.auth.header]: [b.auth.header === "Authorization" ? `Bearer {{${nv}}}` : `{{${nv}}}`] };
    }
    c.backends.push(backend);
    c.explainArtifact({ ref: artifactRef(backend), path: "/", control: "routing", scope: routing.scope });
    if (fo) c.explainArtifact({ ref: artifactRef(backend), path: "/circuitBreaker", ...c.why("failover", fo, pid, mid) });
  }
  if (members.length > MAX_POOL_SIZE) throw invalid("failover", `${id}: a pool holds at most ${MAX_POOL_SIZE} backends`);
  const services = [...members]
    .sort((a, b) => a.priority - b.priority || byCodePoint(a.id, b.id))
    .map((b) => ({ id: `/backends/${c.n.backend(b.id)}`, priority: b.priority, weight: b.weight }));
  const description = `${label}${version === undefined ? "" : ` (version ${version})`}`;
  const poolArtifact: BackendArtifact = { kind: "backend", id, type: "Pool", description, services };
  c.pools.push(poolArtifact);
  c.explainArtifact({ ref: artifactRef(poolArtifact), path: "/", control: "routing", scope: routing.scope });
  const regions = eff["regions.allowed"];
  if (regions) {
    const why = c.why("regions.allowed", regions, pid, mid, `regions ${regions.value.join(", ")}`);
    c.explainArtifact({ ref: artifactRef(poolArtifact), path: "/services", ...why });
  }
  return id;
}

/** The named value of a backend's Key Vault secret (emitted once per secret); returns its id. */
function keyVaultNamedValue(c: Collector, auth: Extract<ModelBackend["auth"], { type: "keyVaultSecret" }>, scope: ScopeRef): string {
  const nv = c.n.namedValue(auth.namedValueId);
  if (!c.namedValues.has(nv)) {
    const artifact: NamedValueArtifact = {
      kind: "namedValue",
      id: nv,
      displayName: nv,
      secret: true,
      keyVault: { secretIdentifier: auth.secretIdentifier, ...(auth.identityClientId ? { identityClientId: auth.identityClientId } : {}) },
      tags: ["aigov"],
    };
    c.namedValues.set(nv, artifact);
    c.explainArtifact({ ref: artifactRef(artifact), path: "/", control: "routing", scope, note: "Key Vault-backed backend key" });
  }
  return nv;
}

/**
 * A tenant-wide backend the GenAI policies call themselves (content safety, embeddings). The policies
 * authenticate with the backend's managed-identity credential (the Content Safety and semantic-cache
 * references require it; resource https://cognitiveservices.azure.com, with a trailing slash for
 * the embeddings backend as the semantic-cache guide writes it). ADR 009 records that this backend
 * property is documented on Learn and in the portal but not in the published REST specifications.
 */
export function serviceBackend(
  c: Collector,
  id: string,
  service: { url: string; clientId?: string | undefined },
  resource: string,
  description: string,
  control: ControlId,
) {
  if (c.serviceBackends.has(id)) return;
  c.serviceBackends.add(id);
  const managedIdentity = { resource, ...(service.clientId ? { clientId: service.clientId } : {}) };
  const backend: BackendArtifact = { kind: "backend", id, type: "Single", url: service.url, description, managedIdentity };
  c.backends.push(backend);
  c.explainArtifact({ ref: artifactRef(backend), path: "/", control, scope: TENANT, note: "shared service (services in the compiler input)" });
}

/** How a model's backends are called: Azure OpenAI deployment paths, or an OpenAI-compatible base URL with the model in the body. */
export function routeOf(model: PolicyModel): "azure" | "v1" {
  return model.provider === "azure-openai" ? "azure" : "v1";
}

/** An Azure OpenAI backend is the resource endpoint: a trailing /openai (a common way to write it) is
 * dropped, because the gateway adds /openai/deployments/<deployment>/… itself. */
function backendUrl(url: string, model: PolicyModel): string {
  return routeOf(model) === "azure" ? url.replace(/\/openai\/?$/, "").replace(/\/$/, "") : url.replace(/\/$/, "");
}
