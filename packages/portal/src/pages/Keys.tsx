import { Badge, Button, Checkbox, Field, Input, Subtitle2 } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { useClient } from "../app/api.js";
import { SecretDialog } from "../app/secret.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";
import { LoadMore, useAllPages, usePaged } from "../app/paging.js";
import { ProjectPicker, ProjectSelect } from "../app/projects.js";

/** Who suspended a key, when not its owner, in words. */
const SUSPENDED_BY = {
  roleRemoved: "its owner lost their project role: giving it back resumes it",
  projectLock: "the sandbox expired",
  agentHold: "its agent is held",
  admin: "by an admin: only an admin resumes it",
} as const;

/** Virtual keys of a project: create with scopes and limits (the secret shown once), rotate, suspend, resume, revoke. */
export default function Keys() {
  const { projectId = "" } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  // While the gateway has not confirmed a change, automation updates the keys: the list follows it.
  const keys = usePaged(["keys", projectId], (token) => client.keys.list(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }), {
    enabled: !!projectId,
    refetchInterval: (items) => (items?.some((k) => k.gateway.state !== "synced") ? 2000 : false),
  });
  // The models a key may be scoped to: every one of them (all pages).
  const models = useAllPages(["models", projectId, "all"], () => client.models.list(projectId, { maxPageSize: 100 }), { enabled: !!projectId });
  const [name, setName] = useState("");
  const [scopeModels, setScopeModels] = useState<string[]>([]);
  const [tools, setTools] = useState("");
  const [agents, setAgents] = useState("");
  const [tpm, setTpm] = useState("");
  const [rpm, setRpm] = useState("");
  const [expires, setExpires] = useState("");
  const [justification, setJustification] = useState("");
  // Does a key asked for here wait for an approval? (The server decides; this only says so up front.)
  const project = useQuery({ queryKey: ["project", projectId], queryFn: () => client.projects.get(projectId), enabled: !!projectId });
  const needsApproval = project.data?.keyPolicy?.requireApproval === true;
  const [reason, setReason] = useState("");
  const [shareWith, setShareWith] = useState("");
  const [secret, setSecret] = useState<{ name: string; key: string }>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const refresh = () => void qc.invalidateQueries({ queryKey: ["keys", projectId] });
  const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);

  // Calls that answer with a secret go straight to the client, not through react-query (nothing caches them).
  const withSecret = async (call: () => Promise<{ name: string; key: string }>) => {
    setBusy(true);
    setError(undefined);
    try {
      const k = await call();
      setSecret({ name: k.name, key: k.key });
      refresh();
    } catch (err) {
      setError(err);
      refresh();
    } finally {
      setBusy(false);
    }
  };
  const create = () =>
    withSecret(async () => {
      const k = await client.keys.create(projectId, {
        name,
        scopes: { ...(scopeModels.length ? { models: scopeModels } : {}), ...(tools ? { tools: list(tools) } : {}), ...(agents ? { agents: list(agents) } : {}) },
        limits: { ...(tpm ? { tokensPerMinute: Number(tpm) } : {}), ...(rpm ? { requestsPerMinute: Number(rpm) } : {}) },
        ...(expires ? { expiresAt: new Date(`${expires}T23:59:59Z`).toISOString() } : {}),
        ...(justification ? { justification } : {}),
      });
      setName("");
      setJustification("");
      return k;
    });
  const act = useMutation({
    mutationFn: async ({ id, etag, action }: { id: string; etag: string; action: "revoke" | "suspend" | "resume" }) => {
      const why = reason || `${action} from the portal`;
      if (action === "revoke") await client.keys.revoke(projectId, id, { reason: why }, etag);
      else if (action === "suspend") await client.keys.suspend(projectId, id, { reason: why }, etag);
      else await client.keys.resume(projectId, id, { reason: why }, etag);
    },
    onSuccess: refresh,
    // A stale ETag: the key changed since the list was read (automation, or someone else); show the new state.
    onError: refresh,
  });

  const share = useMutation({
    mutationFn: ({ id, etag }: { id: string; etag: string }) => client.keys.share(projectId, id, { projectId: shareWith, justification: reason || "shared from the portal" }, etag),
    onSuccess: refresh,
    onError: refresh,
  });

  return (
    <>
      <PageHeader title="Virtual keys">
        <ProjectPicker page="keys" />
      </PageHeader>
      {!projectId ? null : (
        <>
          <Section label="Create a key">
            <Subtitle2 as="h2">Create a key</Subtitle2>
            <FormGrid label="Create a key" onSubmit={() => void create()}>
              <Field label="Name" required>
                <Input value={name} onChange={(_, d) => setName(d.value)} />
              </Field>
              <fieldset>
                <legend>Models (none checked: every model of the project)</legend>
                {(models.data?.items ?? []).map((m) => (
                  <Checkbox key={m.id} label={m.name} checked={scopeModels.includes(m.id)} onChange={(_, d) => setScopeModels((cur) => (d.checked ? [...cur, m.id] : cur.filter((x) => x !== m.id)))} />
                ))}
              </fieldset>
              <Field label="Tools" hint="srv_…, srv_…/tool or tbx_…, comma-separated">
                <Input value={tools} onChange={(_, d) => setTools(d.value)} />
              </Field>
              <Field label="Agents" hint="agt_…, comma-separated">
                <Input value={agents} onChange={(_, d) => setAgents(d.value)} />
              </Field>
              <Field label="Tokens per minute">
                <Input type="number" min={1} value={tpm} onChange={(_, d) => setTpm(d.value)} />
              </Field>
              <Field label="Requests per minute">
                <Input type="number" min={1} value={rpm} onChange={(_, d) => setRpm(d.value)} />
              </Field>
              <Field label="Expires on" hint="Empty: the project's default lifetime">
                <Input type="date" value={expires} onChange={(_, d) => setExpires(d.value)} />
              </Field>
              <Field label="Justification" hint={needsApproval ? "This project's keys need an approval: say why you need it" : "Needed only where a project's keys need an approval"} required={needsApproval}>
                <Input value={justification} onChange={(_, d) => setJustification(d.value)} />
              </Field>
              <Button appearance="primary" type="submit" disabled={busy || !name}>
                {needsApproval ? "Request key" : "Create key"}
              </Button>
            </FormGrid>
            {needsApproval ? <Notice intent="info">Keys of this project work once approved: the key is shown now, and stays suspended until its approval (Approvals) decides.</Notice> : null}
            <ErrorBar error={error} />
          </Section>
          <Section label="Keys">
            <Subtitle2 as="h2">Keys</Subtitle2>
            <div style={{ display: "flex", gap: 16, flexWrap: "wrap" }}>
              <Field label="Reason for the next change">
                <Input value={reason} onChange={(_, d) => setReason(d.value)} />
              </Field>
              <ProjectSelect label="Share with project" value={shareWith} onChange={setShareWith} none="Choose a project" required />
            </div>
            <ErrorBar error={act.error ?? share.error} />
            {share.data ? <Notice>Share requested: its approval decides it (Approvals).</Notice> : null}
            {keys.isPending ? <Loading label="Loading keys" /> : null}
            <ErrorBar error={keys.error} onRetry={() => void keys.refetch()} />
            {keys.data ? (
              <DataTable
                label="Keys"
                empty="No key in this project."
                rows={keys.data.items}
                rowKey={(k) => k.id}
                columns={[
                  { key: "name", label: "Name" },
                  {
                    key: "status",
                    label: "Status",
                    render: (k) => <span data-testid={`key-status-${k.name}`}>{k.approval?.state === "pending" ? "awaiting approval" : k.approval?.state === "rejected" ? `${k.status} (request rejected)` : k.status === "suspended" && k.suspendedBy ? `suspended (${SUSPENDED_BY[k.suspendedBy]})` : k.status}</span>,
                  },
                  { key: "gateway", label: "Gateway", render: (k) => <Badge appearance="outline">{k.gateway.state}</Badge> },
                  { key: "scopes", label: "Scopes", render: (k) => [k.scopes.models === undefined ? "all models" : k.scopes.models.length ? `${k.scopes.models.length} models` : "no models", k.scopes.tools?.length ? `${k.scopes.tools.length} tools` : "", k.scopes.agents?.length ? `${k.scopes.agents.length} agents` : ""].filter(Boolean).join(", ") },
                  { key: "shares", label: "Shared with", render: (k) => <span style={{ wordBreak: "break-all" }}>{k.shares.map((sh) => `${sh.projectId} (${sh.status})`).join(", ")}</span> },
                  { key: "expiresAt", label: "Expires", render: (k) => when(k.expiresAt) },
                  {
                    key: "actions",
                    label: "Actions",
                    render: (k) =>
                      k.status === "revoked" || k.status === "expired" ? null : (
                        <>
                          <Button size="small" disabled={busy} aria-label={`Rotate ${k.name}`} onClick={() => void withSecret(() => client.keys.rotate(projectId, k.id, { overlap: "PT1H" }, k.etag))}>
                            Rotate
                          </Button>
                          {k.approval?.state === "pending" ? null : k.status === "active" ? (
                            <Button size="small" aria-label={`Suspend ${k.name}`} onClick={() => act.mutate({ id: k.id, etag: k.etag, action: "suspend" })}>
                              Suspend
                            </Button>
                          ) : (
                            <Button size="small" aria-label={`Resume ${k.name}`} onClick={() => act.mutate({ id: k.id, etag: k.etag, action: "resume" })}>
                              Resume
                            </Button>
                          )}
                          <Button size="small" disabled={!shareWith || shareWith === projectId} aria-label={`Share ${k.name}`} onClick={() => share.mutate({ id: k.id, etag: k.etag })}>
                            Share
                          </Button>
                          <Button size="small" aria-label={`Revoke ${k.name}`} onClick={() => act.mutate({ id: k.id, etag: k.etag, action: "revoke" })}>
                            Revoke
                          </Button>
                        </>
                      ),
                  },
                ]}
              />
            ) : null}
            <LoadMore list={keys} label="Load more keys" />
          </Section>
          <SecretDialog secret={secret} onClose={() => setSecret(undefined)} />
        </>
      )}
    </>
  );
}
