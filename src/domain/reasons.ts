/**
 * Every specific `reason` a problem can carry: one catalog, with the status it comes with and what it
 * means. DomainError only accepts reasons from here (for its kind's status); the reason table in
 * docs/api.md, the OpenAPI Problem schema (`x-aigov-reasons`) and test/unit/reasons.test.ts derive
 * from it. Meanings are Markdown (the docs table renders them as they are).
 *
 * A new refusal a client may act on gets a reason here (snake_case, what happened, not where); the
 * same situation in another service reuses the existing one. "Internal" reasons are signals a service
 * catches and retries itself; a client sees them only when the retries run out.
 */
export const REASONS = {
  // The docs table lists them in this order: new reasons go to the end of their group, or a new group.
  content_safety_service_missing: { status: 400, meaning: "content safety is switched on at some scope but the tenant has no `services.contentSafety`" },
  embeddings_service_missing: { status: 400, meaning: "the semantic cache is switched on but the tenant has no `services.embeddings`" },
  service_region_not_allowed: { status: 400, meaning: "the write would leave a scope with content safety on — or a key with a content-safety level (`limits.contentSafety`) in a project, or on a model it reaches — under a `regions.allowed` rule that excludes `services.contentSafety.region` (the field and each scope or key named; for a key create, rescope or share: `body.limits.contentSafety` or `body.projectId`): content safety cannot be skipped, so its service must be in an allowed region" },
  gateway_key_collision: { status: 409, meaning: "the tenant's gateway key is held by another tenant on its gateway instance; an operator assigns an explicit key" },
  approval_deadline_passed: { status: 409, meaning: "a decision (API or approver link) came at or after the current stage's deadline: it does not count, and the request has been expired by that very call" },
  approval_link_mismatch: { status: 403, meaning: "an approver link used under another request's URL (`/approvals/{A}/review` with a link issued for B); nothing is read or changed" },
  approval_link_expired: { status: 403, meaning: "the approver link has expired (with its stage's deadline, or after 7 days)" },
  approval_link_invalid: { status: 403, meaning: "the approver link is malformed, forged or tampered with" },
  approval_link_used: { status: 409, meaning: "the approver link has already been used (links work once)" },
  approval_not_awaiting: { status: 409, meaning: "the request (a link's, or one decided through the API) is decided, expired, withdrawn, or at another stage" },
  approval_route_below_minimum: { status: 400, meaning: "approval routes that fall short of the product's minimums (`GET /api/approval-routes` lists them)" },
  approval_route_unsatisfiable: { status: 409, meaning: "the request's route has a stage only project roles could decide, and the request names no project" },
  approver_role_not_allowed: { status: 400, meaning: "a requester added a stage for a role without approval authority (\"any Developer\", \"any Reader\")" },
  approver_is_requester: { status: 403, meaning: "requesters never decide their own request" },
  approver_is_party: { status: 403, meaning: "the approver has a stake in what the request is about (the exemption's owner or original requester, an earlier renewer: `parties` on the request): someone independent must decide" },
  approver_managed_by_requester: { status: 403, meaning: "the decider is assigned to a project the requester administers (separation of duties)" },
  approver_name_not_an_id: { status: 403, meaning: "the stage names this approver as no token does (an e-mail address or sign-in name, stored before names had to be ids): such a name never decides; a TenantAdmin mends the route" },
  subject_type_reserved: { status: 400, meaning: "`exemption`, `keyShare`, `tool`, `projectPromotion` and `sandboxExtension` approvals are requested through their own APIs" },
  managed_identity_not_allowed: { status: 400, meaning: "a managed-identity credential the gateway may not use: its own identity goes only to Azure AI services (*.openai.azure.com, *.cognitiveservices.azure.com, *.services.ai.azure.com) for their audience, and only to the resources an operator listed for the tenant (GATEWAY_SHARED_IDENTITY_HOSTS, GATEWAY_ASSIGNMENTS sharedIdentityHosts); elsewhere name one of the tenant's own identities (clientId), which an operator assigns" },
  loosens_tenant_control: { status: 400, meaning: "a project or model setting would loosen a tenant control (each field named); request an exemption instead" },
  credential_rebind_requires_key: { status: 400, meaning: "a kept provider key would go to another origin or header: send the key again (or a TenantAdmin does it)" },
  control_characters: { status: 400, meaning: "a string or field name in the body, form or query carries a control character (C0 other than tab/LF/CR, DEL) or a lone surrogate" },
  body_too_deep: { status: 400, meaning: "the JSON body is nested deeper than 32 levels" },
  registry_not_compilable: { status: 409, meaning: "the tenant's own settings do not compile (a single project that does not compile is isolated instead, see Publishing)" },
  // ---- approvals ----
  approver_already_decided: { status: 409, meaning: "the caller has already decided on this request (a stage that needs several approvers counts each person once)" },
  approver_not_in_stage: { status: 403, meaning: "the caller is not an approver of the request's current stage (by name, role or escalation)" },
  // ---- names and resources ----
  name_taken: { status: 409, meaning: "the name is already used: a project's in the tenant (case-insensitive), a model's in its project" },
  already_exists: { status: 409, meaning: "a resource with that identity already exists (a create that collided; read it instead)" },
  project_has_dependents: { status: 409, meaning: "the project still has registered resources (models, keys, …): delete them first" },
  project_being_deleted: { status: 409, meaning: "a delete of the project was under way as this was created, so it was withdrawn (nothing was kept, no secret handed out); try again: the project is either gone then (404) or still there" },
  changed_meanwhile: { status: 409, meaning: "the resource changed while the request was applied (a concurrent change won): read it again and retry" },
  // ---- publishing ----
  revision_not_published: { status: 409, meaning: "a rollback names a revision that was never published (pending, failed, superseded): only a published revision can be restored" },
  revision_not_restorable: { status: 409, meaning: "a rollback names a revision stored without the registry it was compiled from: it cannot be compiled again with the keys and exemptions in force now" },
  revision_needs_service: { status: 409, meaning: "a rollback names a revision that switches on content safety or the semantic cache (at the tenant, a project or a model) whose tenant service (`services.contentSafety`, `services.embeddings`) has been removed since, or content safety — a scope's, or a key tier's own (`limits.contentSafety`, keys being live inputs) — where the restored `regions.allowed` excludes `services.contentSafety.region`: configure the service (or its region) again, or publish instead" },
  gateway_state_raced: { status: 409, meaning: "internal: another publish changed the gateway state while this one was recorded; retried by the service, seen only when the retries run out (retry)" },
  revision_number_taken: { status: 409, meaning: "internal: another publish took the next revision number first; the service recomputes against the new state (never returned)" },
  // ---- exemptions ----
  exemption_not_active: { status: 409, meaning: "only an exemption in force (`active`, `expiring`) can be renewed" },
  renewal_pending: { status: 409, meaning: "a renewal of the exemption is already awaiting approval" },
  exemption_ended: { status: 409, meaning: "the exemption is already over (`rejected`, `revoked`, `expired`): there is nothing to revoke" },
  exemption_owner_only: { status: 403, meaning: "only the exemption's owner, its requester or a TenantAdmin may renew or revoke it" },
  relaxation_not_looser: { status: 400, meaning: "a project or model exemption's relaxation is at or below what is in force there (a limit not above the lowest, no threshold above the filter's, every value already allowed), or a key exemption's limit is not above what binds the key (the tighter of its own limit and the project's per-key one) or is one the project counts per project (a shared counter no key tier relaxes): it would relax nothing now, and would relax what the project tightens later" },
  exemption_lifetime_exceeded: { status: 400, meaning: "`expiresAt` is beyond the tenant's maximum for this category (and control) of exemption (`GET /api/exemptions/policy`)" },
  too_many_key_exemptions: { status: 400, meaning: "the tenant already has the most open key-scoped exemptions (10; each is a key tier): exempt the model or project instead" },
  // ---- virtual keys ----
  key_not_active: { status: 409, meaning: "only an `active` key can be rotated or suspended (this one is suspended, revoked or expired)" },
  key_not_suspended: { status: 409, meaning: "only a `suspended` key can be resumed" },
  key_request_refused: { status: 409, meaning: "the key was requested where keys need an approval, and its request was rejected or expired: it never works (it is revoked); request a new key" },
  key_awaiting_approval: { status: 409, meaning: "the key was requested where keys need an approval, and its approval is pending: it cannot be resumed or shared until approved" },
  key_revoked: { status: 409, meaning: "the key is revoked: it cannot be revoked again or shared" },
  key_expired: { status: 409, meaning: "the key has expired (or its `expiresAt` has passed): it cannot be resumed or shared; create a new one" },
  rotation_in_progress: { status: 409, meaning: "a rotation of the key is already in progress (until its overlap ends and the old secret is retired)" },
  key_already_shared: { status: 409, meaning: "the key is already shared, or a share awaits approval, with that project" },
  rotated_secret_not_waiting: { status: 409, meaning: "no rotated secret waits for collection (already collected, or a later rotation or revocation ended it)" },
  rotated_secret_gone: { status: 409, meaning: "the rotated secret is no longer in the secret store: rotate the key again" },
  key_owner_only: { status: 403, meaning: "only the key's owner collects a rotated secret" },
  key_suspended_by_admin: { status: 403, meaning: "an admin suspended the key (someone else's): only a TenantAdmin or the project's ProjectAdmin resumes it" },
  key_owner_without_role: { status: 409, meaning: "the key was suspended when its owner lost their project role (`suspendedBy: roleRemoved`): it is resumed by giving the owner a role that may hold keys (Developer or ProjectAdmin) on the project again, or by its owner while they hold such a role" },
  key_owner_not_caller: { status: 403, meaning: "a key in someone else's name (`owner`) is made, or given to someone else, by a TenantAdmin or the project's ProjectAdmin only" },
  key_profiles_exhausted: { status: 409, meaning: "the key's scopes, limits or shares would be a new key profile in a project that already has the most its gateway document holds (40, revoked and expired keys' included, and for each shared key the profiles the ends of its shares would leave it with), or in the tiers a project it is shared with accepts: reuse the scopes and limits of an existing key; or a key exemption would need a key tier in a project that has no place left for it (a place is held for each key with an open key exemption, or whose subscription is still on an exemption tier)" },
  key_lifetime_exceeded: { status: 400, meaning: "`expiresAt` is beyond the project's maximum key lifetime (`keyPolicy.maxTtlDays`)" },
  key_justification_required: { status: 400, meaning: "the project's keys need an approval (`keyPolicy.requireApproval`) and the request gives no `justification`" },
  // ---- models ----
  credential_not_stored: { status: 400, meaning: "`keep: true` for a backend that has no stored provider key: send the key" },
  // ---- tools (MCP) ----
  backend_address_refused: { status: 400, meaning: "a model backend's URL names a loopback, link-local (cloud metadata), reserved or platform address, or a `localhost` name, which the gateway must not call (private networks are allowed)" },
  upstream_address_refused: { status: 400, meaning: "an MCP server, OpenAPI document or AgentCard URL points at a private, loopback or link-local address (allowed only locally, loopback only), or uses plain http (loopback only, locally)" },
  openapi_invalid: { status: 400, meaning: "the OpenAPI document is not a valid OpenAPI 3.0/3.1 document, or cannot be converted (each problem named)" },
  toolbox_mixes_sources: { status: 400, meaning: "a toolbox holds tools of more than one remote server, or remote and converted (OpenAPI) tools together: the gateway can serve neither as one MCP server" },
  tool_unknown: { status: 400, meaning: "a toolbox or key names a tool (or server) the project's latest discovery does not list" },
  tool_approval_not_required: { status: 409, meaning: "the project's approval mode does not require an approval for this tool (`GET …/tools-settings`)" },
  tool_approval_pending: { status: 409, meaning: "an approval of this tool's current definition is already pending or granted" },
  project_limit_reached: { status: 409, meaning: "the project already holds the most MCP servers (100) or toolboxes (200) the gateway serves for one project; concurrent creates cannot pass the cap (each member holds one of its slots, `src/domain/kernel/slots.ts`)" },
  discovery_not_ready: { status: 409, meaning: "the server has no successful discovery yet: its tools are unknown (`POST …/discover`, then read `discoveryState`)" },
  server_blocked: { status: 409, meaning: "the MCP server is blocked: it is not contacted (no discovery, on demand or scheduled) and its tools are not put to approvers until its status is `active` or `deprecated` again" },
  // ---- agents ----
  agent_card_invalid: { status: 400, meaning: "the AgentCard is not a valid A2A v0.3 or v1.0 card, or a signature on it does not verify (each finding named); nothing was stored" },
  agent_card_unreachable: { status: 400, meaning: "the AgentCard could not be fetched (not found, not JSON, too large, a refused address or redirect, a time-out)" },
  agent_transition_not_allowed: { status: 409, meaning: "the lifecycle does not go from the agent's state to the one asked for (draft → active → deprecated → retired; blocked and back)" },
  agent_is_synced: { status: 409, meaning: "a synced agent is not deleted while its connection exists (the next sync would bring it back): block, disable or retire it" },
  agent_guardrails_need_models: { status: 400, meaning: "an agent's key needs at least one model in its guardrails" },
  agent_retired: { status: 409, meaning: "a retired agent gets no key (its retirement revoked the one it had)" },
  agent_has_key: { status: 409, meaning: "the agent already has a key (active or suspended): rotate it (`aigov keys rotate`) instead of issuing another" },
  agent_blocked_or_disabled: { status: 409, meaning: "the agent is blocked or disabled: its own key stays suspended (`suspendedBy: agentHold`) and it is issued no new one until it is unblocked or enabled again" },
  agent_removed_at_source: { status: 409, meaning: "the agent's cloud no longer lists it (`removedAtSource`): its own key stays suspended (`suspendedBy: agentHold`) and it is issued no new one until a sync finds it at its source again — also when it is blocked, disabled or past its sunset besides (the detail names each hold)" },
  agent_sunset_passed: { status: 409, meaning: "the agent is deprecated and its sunset has come (the gateway refuses it: 410 `agent_sunset`): its own key stays suspended (`suspendedBy: agentHold`) and it is issued no new one unless it is made active again (retiring it revokes the key)" },
  project_agent_limit: { status: 409, meaning: "the project's gateway already serves as many agents as it takes (500): retire or disable one before serving another" },
  platform_identity_not_allowed: { status: 403, meaning: "a connection asks to reach its cloud as the platform's own identity (workload identity, or the default credentials), which this deployment lends only to the tenants its operator lists (AGENT_PLATFORM_IDENTITY_TENANTS): give Bedrock and Vertex AI connections their own credentials; Foundry connections take no other, so the operator must list the tenant" },
  endpoint_override_not_allowed: { status: 400, meaning: "a connection's `endpoint` (a local fake) is accepted only when the control plane runs locally" },
  // ---- usage ----
  usage_range_invalid: { status: 400, meaning: "a usage range whose end is not after its start, or ends (rounded up to its granularity) past the year 9999" },
  usage_range_too_large: { status: 400, meaning: "a usage series with more buckets than its granularity allows (2 days of minutes, 95 days of hours, 800 days): choose a coarser granularity or a shorter range" },
  // ---- access reviews ----
  reviewer_is_holder: { status: 403, meaning: "nobody decides on their own access in an access review (the item's holder: a key's owner, an assignment's principal…)" },
  reviewer_is_party: { status: 403, meaning: "nobody decides in an access review on access they asked for (an exemption's requester or renewer), as they could not approve it" },
  not_item_reviewer: { status: 403, meaning: "the caller is not a reviewer of the item in the campaign's current stage" },
  access_review_closed: { status: 409, meaning: "the access review takes no decisions or stop now: it is scheduled, past its stage's end, stopping, completed or canceled" },
  access_review_not_completed: { status: 409, meaning: "only a completed access review can be applied" },
  access_review_applied: { status: 409, meaning: "the access review's outcomes are already applied (or none is a removal): nothing to apply" },
  // ---- project lifecycle ----
  project_locked: { status: 409, meaning: "the project is locked (its sandbox expired): nothing that adds access is accepted (a key shared into it either) and nothing is deleted until an extension is approved" },
  promotion_required: { status: 409, meaning: "moving a project to a later environment is a promotion (`POST /api/projects/{id}:promote`), not a PATCH" },
  environment_gate_failed: { status: 409, meaning: "a write (to the project, one of its models, or the tenant's settings) would leave a project in test or prod without what its environment's gates require (a cost center; content safety and a limit on the project and each model; in prod a key rotation period): the gates hold after promotion too; an approved exemption is the way below a control" },
  promotion_gates_failed: { status: 409, meaning: "the promotion's gates do not all pass (the detail lists the failing ones; `GET /api/projects/{id}/promotion-gates` shows the checklist)" },
  promotion_pending: { status: 409, meaning: "a promotion or extension of the project is already awaiting its approval" },
  extension_required: { status: 409, meaning: "a later review date for a sandbox is an extension (`POST /api/projects/{id}:extend`, through approval), not a PATCH" },
  not_a_sandbox: { status: 409, meaning: "only a sandbox project has a review date to extend" },
  // ---- requests ----
  if_match_not_supported: { status: 400, meaning: "`If-Match` sent to an operation that has no ETag to compare it with (the OpenAPI document lists the operations that take one): it could never be honoured, so the write is refused rather than done unconditionally" },
} as const satisfies Record<string, { status: 400 | 403 | 409; meaning: string }>;

export type Reason = keyof typeof REASONS;

/** The reasons that come with a status (a conflict's are the 409 ones). */
export type ReasonWith<S extends number> = { [R in Reason]: (typeof REASONS)[R]["status"] extends S ? R : never }[Reason];

/**
 * The reason a problem carries when its refusal has no specific one: its code in snake_case (see
 * src/http/problem.ts), with its status.
 */
export const DEFAULT_REASONS = {
  validation_failed: 400,
  malformed_body: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  precondition_failed: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  precondition_required: 428,
  internal_error: 500,
  unavailable: 503,
} as const satisfies Record<string, number>;
