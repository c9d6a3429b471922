import { Badge, Button, Checkbox, Field, Input, ProgressBar, Radio, RadioGroup, Select, Subtitle2, Textarea, makeStyles, tokens } from "@fluentui/react-components";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { useParams } from "react-router";
import { useClient } from "../app/api.js";
import { hasAny, useSession } from "../app/session.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";
import { useAllPages } from "../app/paging.js";
import { ProjectPicker, useProjects } from "../app/projects.js";
import { revisionNotes } from "../app/revision-notes.js";

type Settings = Record<string, unknown>;
type Scope = "project" | "tenant" | "model";
const PERIODS = ["Hourly", "Daily", "Weekly", "Monthly", "Yearly"] as const;
const CATEGORIES = ["Hate", "SelfHarm", "Sexual", "Violence"] as const;
/** Severity thresholds of the four-level scale (0, 2, 4, 6): a prompt at or above it is refused. */
const SEVERITIES = [
  { value: 2, label: "Low and above (strictest)" },
  { value: 4, label: "Medium and above (default)" },
  { value: 6, label: "High only" },
] as const;

const useStyles = makeStyles({
  split: { display: "grid", gridTemplateColumns: "minmax(320px, 1fr) minmax(360px, 1.3fr)", gap: tokens.spacingHorizontalXXL, alignItems: "start" },
  xml: {
    fontFamily: tokens.fontFamilyMonospace,
    fontSize: tokens.fontSizeBase200,
    whiteSpace: "pre",
    overflow: "auto",
    maxHeight: "60vh",
    padding: tokens.spacingHorizontalM,
    backgroundColor: tokens.colorNeutralBackground1,
    border: `1px solid ${tokens.colorNeutralStroke2}`,
  },
  json: { fontFamily: tokens.fontFamilyMonospace, minHeight: "160px" },
  note: { display: "block" },
});

// Reads and writes one nested field of a settings object (the form's fields over the draft).
const get = (o: Settings, path: string[]): unknown => path.reduce<unknown>((v, k) => (v && typeof v === "object" ? (v as Settings)[k] : undefined), o);
function set(o: Settings, path: string[], value: unknown): Settings {
  const [head, ...rest] = path;
  const next = { ...o };
  if (!rest.length) {
    if (value === undefined) delete next[head!];
    else next[head!] = value;
  } else {
    const inner = set((o[head!] as Settings | undefined) ?? {}, rest, value);
    if (Object.keys(inner).length) next[head!] = inner;
    else delete next[head!];
  }
  return next;
}
const num = (s: string) => (s.trim() === "" ? undefined : Number(s));

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** The policy editor: settings forms with the compiled APIM XML beside them, then diff, publish, revisions and drift. */
export default function Policy() {
  const s = useStyles();
  const { projectId = "" } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  const { session } = useSession();
  const isTenantAdmin = hasAny(session, ["TenantAdmin"]);
  const [scope, setScope] = useState<Scope>("project");
  const project = useQuery({ queryKey: ["project", projectId], queryFn: () => client.projects.get(projectId), enabled: !!projectId });
  const tenant = useQuery({ queryKey: ["tenantSettings"], queryFn: () => client.settings.get() });
  // The model scope chooser offers every model (all pages).
  const models = useAllPages(["models", projectId, "all"], () => client.models.list(projectId, { maxPageSize: 100 }), { enabled: !!projectId });
  const [modelId, setModelId] = useState("");
  const model = models.data?.items.find((m) => m.id === modelId);
  const saved: Settings | undefined =
    scope === "project"
      ? project.data
        ? ((project.data.settings ?? {}) as Settings)
        : undefined
      : scope === "tenant"
        ? (tenant.data?.settings as Settings | undefined)
        : model
          ? ((model.settings ?? {}) as Settings)
          : undefined;
  const [draft, setDraft] = useState<Settings>();
  const [json, setJson] = useState("");
  const [jsonError, setJsonError] = useState<string>();
  // A new scope, project or saved version: the draft starts from what is saved.
  const savedJson = saved ? JSON.stringify(saved) : undefined;
  useEffect(() => {
    if (savedJson !== undefined) {
      const value = JSON.parse(savedJson) as Settings;
      setDraft(value);
      setJson(JSON.stringify(value, null, 2));
      setJsonError(undefined);
    }
  }, [savedJson, scope, projectId, modelId]);
  const edit = (path: string[], value: unknown) => {
    const next = set(draft ?? {}, path, value);
    setDraft(next);
    setJson(JSON.stringify(next, null, 2));
  };

  const debounced = useDebounced(draft, 300);
  const preview = useQuery({
    queryKey: ["policyPreview", projectId, scope, modelId, debounced],
    queryFn: () =>
      client.policy.preview(projectId, {
        ...(scope === "project" ? { settings: debounced as never } : scope === "tenant" ? { tenantSettings: debounced as never } : { models: { [modelId]: debounced as never } }),
        explain: true,
      }),
    enabled: !!projectId && debounced !== undefined && (scope !== "model" || !!model),
    placeholderData: keepPreviousData,
    retry: false,
  });
  const policies = useMemo(() => (preview.data?.artifacts ?? []).filter((a) => typeof a.xml === "string"), [preview.data]);
  const [artifact, setArtifact] = useState<string>();
  const shown = policies.find((a) => a.ref === artifact) ?? policies.find((a) => a.kind === "policy" && a.ref.includes(projectId)) ?? policies[0];

  const save = useMutation({
    mutationFn: async () => {
      if (scope === "project") return client.projects.update(projectId, { settings: (draft ?? {}) as never }, project.data!.etag);
      if (scope === "model") return client.models.update(projectId, modelId, { settings: (draft ?? {}) as never }, model!.etag);
      return client.settings.put({ settings: (draft ?? {}) as never, services: (tenant.data?.services ?? {}) as never }, tenant.data!.etag);
    },
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: [scope === "project" ? "project" : scope === "model" ? "models" : "tenantSettings"] });
      void qc.invalidateQueries({ queryKey: ["gatewayDiff"] });
    },
  });
  const revisions = useQuery({ queryKey: ["revisions"], queryFn: () => client.policy.revisions({ maxPageSize: 10 }), refetchInterval: (q) => (q.state.data?.items.some((r) => r.status === "pending") ? 1000 : false) });
  // What would change: against the revision the gateway holds, so it moves with saves and with each publish's end.
  const held = revisions.data?.items.find((r) => r.status === "published")?.id;
  const diff = useQuery({ queryKey: ["gatewayDiff", project.data?.etag, tenant.data?.etag, held], queryFn: () => client.policy.diff(), enabled: isTenantAdmin });
  const drift = useQuery({ queryKey: ["drift"], queryFn: () => client.policy.drift() });
  const [reason, setReason] = useState("");
  const publish = useMutation({
    mutationFn: () => client.policy.publish({ reason }),
    onSuccess: () => {
      setReason("");
      void qc.invalidateQueries({ queryKey: ["revisions"] });
      void qc.invalidateQueries({ queryKey: ["gatewayDiff"] });
    },
  });
  const rollback = useMutation({
    mutationFn: (id: string) => client.policy.rollback(id, { reason: `rollback from the portal by ${session?.user ?? "?"}` }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["revisions"] }),
  });
  const checkDrift = useMutation({ mutationFn: () => client.policy.checkDrift(), onSuccess: () => void qc.invalidateQueries({ queryKey: ["drift"] }) });
  const pending = revisions.data?.items.find((r) => r.status === "pending");
  // ProjectPicker reads the same query: the names staged projects are shown by.
  const projects = useProjects();
  const projectName = (id: string) => projects.data?.items.find((p) => p.id === id)?.name;
  const d = draft ?? {};
  const dirty = draft !== undefined && JSON.stringify(draft) !== savedJson;

  return (
    <>
      <PageHeader title="Policy">
        <ProjectPicker page="policy" />
      </PageHeader>
      {!projectId ? null : (
        <>
          <Field label="Settings scope">
            <RadioGroup layout="horizontal" value={scope} onChange={(_, d) => setScope(d.value as Scope)}>
              <Radio value="project" label="Project settings" />
              <Radio value="tenant" label="Tenant settings (floors)" />
              <Radio value="model" label="Model settings" />
            </RadioGroup>
          </Field>
          {scope === "model" ? (
            <Field label="Model">
              <Select value={modelId} onChange={(_, v) => setModelId(v.value)}>
                <option value="" disabled>
                  Choose a model
                </option>
                {(models.data?.items ?? []).map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.name}
                  </option>
                ))}
              </Select>
            </Field>
          ) : null}
          <div className={s.split}>
            <Section label="Settings">
              {!saved ? <Loading label="Loading settings" /> : null}
              <ErrorBar error={scope === "project" ? project.error : tenant.error} />
              <FormGrid label={`${scope} settings`} onSubmit={() => save.mutate()}>
                <Field label="Tokens per minute">
                  <Input type="number" min={1} value={String(get(d, ["tokens", "perMinute", "limit"]) ?? "")} onChange={(_, v) => edit(["tokens", "perMinute", "limit"], num(v.value))} />
                </Field>
                <Field label="Token quota">
                  <Input type="number" min={1} value={String(get(d, ["tokens", "quota", "limit"]) ?? "")} onChange={(_, v) => edit(["tokens", "quota", "limit"], num(v.value))} />
                </Field>
                <Field label="Quota period">
                  <Select value={String(get(d, ["tokens", "quota", "period"]) ?? "")} onChange={(_, v) => edit(["tokens", "quota", "period"], v.value || undefined)}>
                    <option value="">(default Monthly)</option>
                    {PERIODS.map((p) => (
                      <option key={p}>{p}</option>
                    ))}
                  </Select>
                </Field>
                {scope !== "model" ? (
                  <Field label="Requests per minute">
                    <Input type="number" min={1} value={String(get(d, ["requests", "rate", "calls"]) ?? "")} onChange={(_, v) => edit(["requests", "rate", "calls"], num(v.value))} />
                  </Field>
                ) : null}
                <Field label="Allowed regions" hint="Comma-separated">
                  <Input
                    value={((get(d, ["regions", "allowed"]) as string[] | undefined) ?? []).join(", ")}
                    onChange={(_, v) => edit(["regions", "allowed"], v.value.trim() ? v.value.split(",").map((x) => x.trim()).filter(Boolean) : undefined)}
                  />
                </Field>
                {scope !== "model" ? (
                  <Field label="Largest prompt (bytes)">
                    <Input type="number" min={1} value={String(get(d, ["prompt", "maxBytes"]) ?? "")} onChange={(_, v) => edit(["prompt", "maxBytes"], num(v.value))} />
                  </Field>
                ) : null}
                <fieldset style={{ gridColumn: "1 / -1", border: "none", padding: 0, display: "flex", gap: 16, flexWrap: "wrap", alignItems: "end" }}>
                  <legend>Content filtering (Azure AI Content Safety)</legend>
                  <Checkbox
                    label="Check prompts"
                    checked={get(d, ["contentSafety"]) !== undefined && get(d, ["contentSafety", "enabled"]) !== false}
                    onChange={(_, v) => edit(["contentSafety"], v.checked ? { ...((get(d, ["contentSafety"]) as Settings | undefined) ?? {}), enabled: true } : undefined)}
                  />
                  <Field label="Block at severity">
                    <Select
                      disabled={get(d, ["contentSafety"]) === undefined}
                      value={String(get(d, ["contentSafety", "categories", "Hate"]) ?? "")}
                      onChange={(_, v) => edit(["contentSafety", "categories"], v.value ? Object.fromEntries(CATEGORIES.map((c) => [c, Number(v.value)])) : undefined)}
                    >
                      <option value="">(default: medium and above)</option>
                      {SEVERITIES.map((x) => (
                        <option key={x.value} value={x.value}>
                          {x.label}
                        </option>
                      ))}
                    </Select>
                  </Field>
                  <Checkbox
                    label="Prompt Shields (jailbreak attacks)"
                    disabled={get(d, ["contentSafety"]) === undefined}
                    checked={get(d, ["contentSafety", "shieldPrompt"]) === true}
                    onChange={(_, v) => edit(["contentSafety", "shieldPrompt"], v.checked ? true : undefined)}
                  />
                </fieldset>
                <Field label="All settings (JSON)" validationMessage={jsonError} style={{ gridColumn: "1 / -1" }}>
                  <Textarea
                    className={s.json}
                    value={json}
                    onChange={(_, v) => {
                      setJson(v.value);
                      try {
                        setDraft(JSON.parse(v.value || "{}") as Settings);
                        setJsonError(undefined);
                      } catch (err) {
                        setJsonError(err instanceof Error ? err.message : "not JSON");
                      }
                    }}
                  />
                </Field>
                <Button appearance="primary" type="submit" disabled={!dirty || save.isPending || (scope === "tenant" && !isTenantAdmin)}>
                  Save {scope} settings
                </Button>
              </FormGrid>
              <ErrorBar error={save.error} />
              {scope === "tenant" && tenant.data ? <SharedServices tenant={tenant.data} canEdit={isTenantAdmin} /> : null}
              {save.isSuccess && !dirty ? <Notice>Saved. Publish to put it at the gateway.</Notice> : null}
            </Section>
            <Section label="Compiled APIM policy">
              <Subtitle2 as="h2">
                Compiled APIM policy {preview.isFetching ? <Badge appearance="outline">compiling…</Badge> : null} {dirty ? <Badge appearance="tint" color="warning">draft</Badge> : null}
              </Subtitle2>
              <ErrorBar error={preview.error} />
              <Field label="Artifact">
                <Select value={shown?.ref ?? ""} onChange={(_, v) => setArtifact(v.value)}>
                  {policies.map((a) => (
                    <option key={a.ref}>{a.ref}</option>
                  ))}
                </Select>
              </Field>
              <pre className={s.xml} data-testid="policy-xml" tabIndex={0}>
                {typeof shown?.xml === "string" ? shown.xml : ""}
              </pre>
              <details>
                <summary>Why each element is there ({preview.data?.explain?.length ?? 0})</summary>
                <DataTable
                  label="Explanation"
                  empty="Nothing to explain."
                  rows={(preview.data?.explain ?? []).filter((e) => !shown || e.ref === shown.ref)}
                  rowKey={(e) => `${e.ref}|${e.path}|${JSON.stringify(e.control)}`}
                  columns={[
                    { key: "path", label: "Element" },
                    { key: "control", label: "Control", render: (e) => JSON.stringify(e.control) },
                    { key: "scope", label: "Scope", render: (e) => JSON.stringify(e.scope) },
                  ]}
                />
              </details>
            </Section>
          </div>
          <Section label="Publish">
            <Subtitle2 as="h2">Publish</Subtitle2>
            {diff.data ? (
              <details>
                <summary>
                  Against the published revision: +{diff.data.counts.added} ~{diff.data.counts.modified} -{diff.data.counts.removed}
                </summary>
                <pre className={s.xml} tabIndex={0}>{diff.data.diff}</pre>
              </details>
            ) : null}
            <ErrorBar error={diff.error} />
            <FormGrid label="Publish" onSubmit={() => publish.mutate()}>
              <Field label="Reason" required>
                <Input value={reason} onChange={(_, v) => setReason(v.value)} />
              </Field>
              <Button appearance="primary" type="submit" disabled={!isTenantAdmin || !reason || publish.isPending || !!pending}>
                Publish
              </Button>
            </FormGrid>
            <ErrorBar error={publish.error} />
            {publish.data && !publish.data.changed ? <Notice intent="info">Nothing to publish: the gateway already holds this.</Notice> : null}
            {pending ? (
              <Field label={`Revision ${pending.number} is on its way to the gateway`} validationState="none">
                <ProgressBar aria-label="Publishing" />
              </Field>
            ) : null}
          </Section>
          <Section label="Revisions">
            <Subtitle2 as="h2">Revisions</Subtitle2>
            <ErrorBar error={revisions.error ?? rollback.error} />
            {revisions.data ? (
              <DataTable
                label="Revisions"
                empty="Nothing published yet."
                rows={revisions.data.items}
                rowKey={(r) => r.id}
                columns={[
                  { key: "number", label: "#" },
                  { key: "status", label: "Status", render: (r) => <span data-testid={`revision-${r.number}-status`}>{r.status}</span> },
                  { key: "kind", label: "Kind" },
                  { key: "reason", label: "Reason" },
                  { key: "createdBy", label: "By" },
                  { key: "createdAt", label: "When", render: (r) => when(r.createdAt) },
                  {
                    key: "notes",
                    label: "Notes",
                    render: (r) => (
                      <span data-testid={`revision-${r.number}-notes`}>
                        {revisionNotes(r, revisions.data?.items ?? [], projectName).map((note, i) => (
                          <span key={i} className={s.note}>
                            {note}
                          </span>
                        ))}
                      </span>
                    ),
                  },
                  {
                    key: "rollback",
                    label: "",
                    render: (r) =>
                      isTenantAdmin && r.status === "published" ? (
                        <Button size="small" onClick={() => rollback.mutate(r.id)} aria-label={`Roll back to revision ${r.number}`}>
                          Roll back
                        </Button>
                      ) : null,
                  },
                ]}
              />
            ) : (
              <Loading label="Loading revisions" />
            )}
          </Section>
          <Section label="Drift">
            <Subtitle2 as="h2">Drift</Subtitle2>
            <ErrorBar error={drift.error ?? checkDrift.error} />
            {drift.data ? (
              <p>
                {/* A report never computed has no checkedAt: its status says nothing about the gateway yet. */}
                {drift.data.checkedAt ? `${drift.data.status} · checked ${when(drift.data.checkedAt)} (${drift.data.checkedArtifacts} artifacts)` : "not checked yet"}
                {drift.data.items.length ? ` · ${drift.data.items.map((i) => `${i.ref} ${i.state}`).join(", ")}` : ""}
              </p>
            ) : null}
            <Button onClick={() => checkDrift.mutate()} disabled={!isTenantAdmin || checkDrift.isPending}>
              Check drift now
            </Button>
          </Section>
        </>
      )}
    </>
  );
}

type TenantSettingsView = Awaited<ReturnType<ReturnType<typeof useClient>["settings"]["get"]>>;

/**
 * The services some controls need, saved with the tenant settings as they are: the Azure AI Content Safety
 * resource (content filtering) and an embeddings deployment (the semantic cache). The gateway reaches them
 * with its managed identity; a control switched on without its service is refused with
 * `content_safety_service_missing` (or the cache's).
 */
function SharedServices({ tenant, canEdit }: { tenant: TenantSettingsView; canEdit: boolean }) {
  const client = useClient();
  const qc = useQueryClient();
  const services = tenant.services as { contentSafety?: { url?: string; region?: string }; embeddings?: { url?: string; region?: string } };
  const [contentSafety, setContentSafety] = useState(services.contentSafety?.url ?? "");
  const [contentSafetyRegion, setContentSafetyRegion] = useState(services.contentSafety?.region ?? "");
  const [embeddings, setEmbeddings] = useState(services.embeddings?.url ?? "");
  const [embeddingsRegion, setEmbeddingsRegion] = useState(services.embeddings?.region ?? "");
  /** A service as saved: its URL, and its region when one is given (none: the region rules treat it as unknown, ADR 024). */
  const service = (current: { region?: string } | undefined, url: string, region: string) => {
    const { region: _was, ...rest } = current ?? {};
    return { ...rest, url: url.trim(), ...(region.trim() ? { region: region.trim() } : {}) };
  };
  const save = useMutation({
    mutationFn: () =>
      client.settings.put(
        {
          settings: tenant.settings as never,
          services: {
            ...(contentSafety.trim() ? { contentSafety: service(services.contentSafety, contentSafety, contentSafetyRegion) } : {}),
            ...(embeddings.trim() ? { embeddings: service(services.embeddings, embeddings, embeddingsRegion) } : {}),
          } as never,
        },
        tenant.etag,
      ),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["tenantSettings"] }),
  });
  return (
    <FormGrid label="Shared services" onSubmit={() => save.mutate()}>
      <Field label="Content Safety endpoint" hint="https://<name>.cognitiveservices.azure.com (the gateway's identity needs Cognitive Services User)">
        <Input type="url" value={contentSafety} onChange={(_, v) => setContentSafety(v.value)} />
      </Field>
      <Field label="Content Safety region" hint="The resource's Azure region (e.g. westeurope): every screened prompt goes there, so region rules must allow it">
        <Input value={contentSafetyRegion} onChange={(_, v) => setContentSafetyRegion(v.value)} />
      </Field>
      <Field label="Embeddings deployment" hint="…/openai/deployments/<name>/embeddings, for the semantic cache">
        <Input type="url" value={embeddings} onChange={(_, v) => setEmbeddings(v.value)} />
      </Field>
      <Field label="Embeddings region" hint="The deployment's Azure region: models whose region rules exclude it (or any region rule while it is empty) do not use the cache">
        <Input value={embeddingsRegion} onChange={(_, v) => setEmbeddingsRegion(v.value)} />
      </Field>
      <Button type="submit" disabled={!canEdit || save.isPending}>
        Save services
      </Button>
      <ErrorBar error={save.error} />
      {save.isSuccess ? <Notice>Services saved.</Notice> : null}
    </FormGrid>
  );
}
