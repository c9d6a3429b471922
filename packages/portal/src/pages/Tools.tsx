import { Badge, Button, Checkbox, Field, Input, Select, Subtitle2 } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useClient } from "../app/api.js";
import { useConfig } from "../app/config-context.js";
import { LoadMore, useAllPages, usePaged } from "../app/paging.js";
import { ProjectPicker } from "../app/projects.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";

type Client = ReturnType<typeof useClient>;
type Server = Awaited<ReturnType<Client["tools"]["listServers"]>>["items"][number];
type Entry = Awaited<ReturnType<Client["tools"]["searchCatalog"]>>["items"][number];

/** Approval states from which a project member may ask (again). */
const REQUESTABLE = new Set(["required", "rejected", "withdrawn"]);

/**
 * A project's MCP servers (remote, or converted from an OpenAPI document), their discovery, the tool catalog
 * with approvals and risk, toolboxes (a virtual server of chosen tools), and the gateway URL each is
 * reached at once published.
 */
export default function Tools() {
  const { projectId = "" } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  const config = useConfig();
  // Discovery runs in the background after a registration: the list is read again until every server has an outcome.
  const servers = usePaged(["mcpServers", projectId], (token) => client.tools.listServers(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }), {
    enabled: !!projectId,
    refetchInterval: (items) => (items?.some((s) => s.discoveryState.status === "never") ? 2000 : false),
  });
  const [q, setQ] = useState("");
  // The catalog follows the servers' latest discoveries (a new snapshot is a new catalog).
  const snapshots = (servers.data?.items ?? []).map((s) => s.discoveryState.snapshotId ?? "").join(",");
  const search = { projectId, maxPageSize: 100, ...(q.trim() ? { q: q.trim() } : {}) };
  // The table a page at a time; the toolbox form's tool choice offers every tool the search finds (all pages).
  // Both keys are under ["toolCatalog", projectId], which a change to the servers or an approval invalidates.
  const catalog = usePaged(["toolCatalog", projectId, "paged", q, snapshots], (token) => client.tools.searchCatalog({ ...search, ...(token ? { continuationToken: token } : {}) }), { enabled: !!projectId });
  const choices = useAllPages(["toolCatalog", projectId, "all", q, snapshots], () => client.tools.searchCatalog(search), { enabled: !!projectId });
  // The project's API path as published: MCP servers and toolboxes are below it (…/mcp/<server>, …/toolboxes/<name>).
  const apiPath = useQuery({
    queryKey: ["projectApiPath", projectId],
    queryFn: async () => (await client.policy.show(projectId)).artifacts.find((a) => a.kind === "api" && typeof a.id === "string" && a.id.endsWith(`-${projectId}`))?.path as string | undefined,
    enabled: !!projectId,
  });
  const base = config.gatewayUrl && apiPath.data ? `${new URL(config.gatewayUrl, location.href).href.replace(/\/$/, "")}/${apiPath.data}` : undefined;
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ["mcpServers", projectId] });
    void qc.invalidateQueries({ queryKey: ["toolCatalog", projectId] });
  };
  const discover = useMutation({ mutationFn: (s: Server) => client.tools.discover(projectId, s.id), onSuccess: refresh });
  const request = useMutation({
    mutationFn: (e: Entry) => client.tools.requestApproval(projectId, e.serverId, e.tool, { justification: "requested from the portal" }),
    onSuccess: refresh,
  });
  return (
    <>
      <PageHeader title="Tools">
        <ProjectPicker page="tools" />
      </PageHeader>
      {!projectId ? null : (
        <>
          <RegisterServer projectId={projectId} onDone={refresh} />
          <Section label="Servers">
            <Subtitle2 as="h2">Servers</Subtitle2>
            {servers.isPending ? <Loading label="Loading servers" /> : null}
            <ErrorBar error={servers.error ?? discover.error} onRetry={() => void servers.refetch()} />
            {servers.data ? (
              <DataTable
                label="MCP servers"
                empty="No MCP server in this project."
                rows={servers.data.items}
                rowKey={(s) => s.id}
                columns={[
                  { key: "name", label: "Name" },
                  { key: "source", label: "Source", render: (s) => (s.source.kind === "remote" ? `${s.source.url} (${s.source.transport})` : `OpenAPI: ${s.source.baseUrl}`) },
                  {
                    key: "discovery",
                    label: "Discovery",
                    render: (s) => (
                      <span data-testid={`discovery-${s.name}`}>
                        {s.discoveryState.status === "succeeded"
                          ? `${s.discoveryState.toolCount ?? 0} tools, MCP ${s.discoveryState.protocolVersion ?? ""} (${when(s.discoveryState.lastSuccessAt)})`
                          : s.discoveryState.status === "failed"
                            ? `failed: ${s.discoveryState.failure?.message ?? ""}`
                            : "not yet"}
                      </span>
                    ),
                  },
                  { key: "status", label: "Status", render: (s) => <Badge appearance="tint">{s.status}</Badge> },
                  { key: "connect", label: "Connect at the gateway", render: (s) => (base ? <code>{`${base}/mcp/${s.name}/mcp`}</code> : "publish first") },
                  { key: "discover", label: "", render: (s) => <Button size="small" onClick={() => discover.mutate(s)} aria-label={`Discover now: ${s.name}`}>Discover now</Button> },
                ]}
              />
            ) : null}
            <LoadMore list={servers} label="Load more MCP servers" />
          </Section>
          <Section label="Tool catalog">
            <Subtitle2 as="h2">Tool catalog</Subtitle2>
            <Field label="Search tools">
              <Input type="search" value={q} onChange={(_, d) => setQ(d.value)} />
            </Field>
            <ErrorBar error={catalog.error ?? request.error} />
            {catalog.data ? (
              <DataTable
                label="Tools"
                empty="No tool found."
                rows={catalog.data.items}
                rowKey={(e) => `${e.serverId}/${e.tool}`}
                columns={[
                  { key: "namespacedName", label: "Tool" },
                  { key: "description", label: "Description" },
                  { key: "approval", label: "Approval", render: (e) => <Badge appearance="tint" data-testid={`approval-${e.namespacedName}`}>{e.approval}</Badge> },
                  { key: "risk", label: "Risk", render: (e) => [e.annotations.readOnly ? "read-only" : "writes", e.annotations.destructive ? "destructive" : "", e.findingCount ? `${e.findingCount} findings` : ""].filter(Boolean).join(", ") },
                  {
                    key: "request",
                    label: "",
                    render: (e) =>
                      REQUESTABLE.has(e.approval) ? (
                        <Button size="small" onClick={() => request.mutate(e)} aria-label={`Request approval of ${e.namespacedName}`}>
                          Request approval
                        </Button>
                      ) : null,
                  },
                ]}
              />
            ) : null}
            <LoadMore list={catalog} label="Load more tools" />
            {request.data ? <Notice>Approval requested: it waits in the <Link to="/approvals">approvals inbox</Link>.</Notice> : null}
          </Section>
          <Toolboxes projectId={projectId} entries={choices.data?.items ?? []} base={base} />
        </>
      )}
    </>
  );
}

/** A remote MCP server by URL, or a REST API turned into tools from its OpenAPI document. */
function RegisterServer({ projectId, onDone }: { projectId: string; onDone: () => void }) {
  const client = useClient();
  const [name, setName] = useState("");
  const [kind, setKind] = useState<"remote" | "openapi">("remote");
  const [url, setUrl] = useState("");
  const [transport, setTransport] = useState<"streamable-http" | "sse">("streamable-http");
  const [documentUrl, setDocumentUrl] = useState("");
  const create = useMutation({
    mutationFn: () =>
      client.tools.createServer(projectId, {
        name,
        source: kind === "remote" ? { kind, url, transport } : { kind, baseUrl: url, documentUrl },
      }),
    onSuccess: () => {
      setName("");
      onDone();
    },
  });
  return (
    <Section label="Register an MCP server">
      <Subtitle2 as="h2">Register an MCP server</Subtitle2>
      <FormGrid label="Register an MCP server" onSubmit={() => create.mutate()}>
        <Field label="Server name" required hint="lower-case letters, digits and -: its path at the gateway">
          <Input value={name} onChange={(_, d) => setName(d.value)} />
        </Field>
        <Field label="Kind">
          <Select value={kind} onChange={(_, d) => setKind(d.value as typeof kind)}>
            <option value="remote">A remote MCP server</option>
            <option value="openapi">A REST API (OpenAPI document)</option>
          </Select>
        </Field>
        <Field label={kind === "remote" ? "MCP endpoint URL" : "REST API base URL"} required>
          <Input type="url" value={url} onChange={(_, d) => setUrl(d.value)} />
        </Field>
        {kind === "remote" ? (
          <Field label="Transport">
            <Select value={transport} onChange={(_, d) => setTransport(d.value as typeof transport)}>
              <option value="streamable-http">Streamable HTTP</option>
              <option value="sse">HTTP+SSE (legacy)</option>
            </Select>
          </Field>
        ) : (
          <Field label="OpenAPI document URL" required>
            <Input type="url" value={documentUrl} onChange={(_, d) => setDocumentUrl(d.value)} />
          </Field>
        )}
        <Button appearance="primary" type="submit" disabled={!name || !url || (kind === "openapi" && !documentUrl) || create.isPending}>
          Register server
        </Button>
      </FormGrid>
      <ErrorBar error={create.error} />
      {create.data ? <Notice>Registered {create.data.name}: discovery reads its tools.</Notice> : null}
    </Section>
  );
}

/** Toolboxes: a named set of tools from the project's servers, served as one MCP server. */
function Toolboxes({ projectId, entries, base }: { projectId: string; entries: Entry[]; base: string | undefined }) {
  const client = useClient();
  const qc = useQueryClient();
  const toolboxes = usePaged(["toolboxes", projectId], (token) => client.toolboxes.list(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }));
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const create = useMutation({
    mutationFn: () =>
      client.toolboxes.create(projectId, {
        name,
        tools: entries.filter((e) => chosen.has(e.namespacedName)).map((e) => ({ server: e.server, tool: e.tool })),
      }),
    onSuccess: () => {
      setName("");
      setChosen(new Set());
      void qc.invalidateQueries({ queryKey: ["toolboxes", projectId] });
    },
  });
  return (
    <Section label="Toolboxes">
      <Subtitle2 as="h2">Toolboxes</Subtitle2>
      <ErrorBar error={toolboxes.error} />
      {toolboxes.data ? (
        <DataTable
          label="Toolboxes"
          empty="No toolbox in this project."
          rows={toolboxes.data.items}
          rowKey={(t) => t.id}
          columns={[
            { key: "name", label: "Name" },
            { key: "tools", label: "Tools", render: (t) => t.tools.map((x) => `${x.server}/${x.tool}`).join(", ") },
            { key: "connect", label: "Connect at the gateway", render: (t) => (base ? <code>{`${base}/toolboxes/${t.name}/mcp`}</code> : "publish first") },
          ]}
        />
      ) : null}
      <LoadMore list={toolboxes} label="Load more toolboxes" />
      {entries.length ? (
        <FormGrid label="Create a toolbox" onSubmit={() => create.mutate()}>
          <Field label="Toolbox name" required>
            <Input value={name} onChange={(_, d) => setName(d.value)} />
          </Field>
          <fieldset aria-label="Tools in the toolbox" style={{ border: "none", padding: 0 }}>
            {entries.map((e) => (
              <Checkbox
                key={e.namespacedName}
                label={e.namespacedName}
                checked={chosen.has(e.namespacedName)}
                onChange={(_, d) => setChosen((prev) => {
                  const next = new Set(prev);
                  if (d.checked) next.add(e.namespacedName);
                  else next.delete(e.namespacedName);
                  return next;
                })}
              />
            ))}
          </fieldset>
          <Button appearance="primary" type="submit" disabled={!name || chosen.size === 0 || create.isPending}>
            Create toolbox
          </Button>
        </FormGrid>
      ) : null}
      <ErrorBar error={create.error} />
    </Section>
  );
}
