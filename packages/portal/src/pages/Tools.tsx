import { Badge, Button, Field, Input, Subtitle2 } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { useClient } from "../app/api.js";
import { useConfig } from "../app/config-context.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section } from "../app/ui.js";
import { ProjectPicker } from "../app/projects.js";

/** MCP servers of a project and the searchable tool catalog: approval state, findings, and how to connect. */
export default function Tools() {
  const { projectId = "" } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  const config = useConfig();
  const servers = useQuery({ queryKey: ["mcpServers", projectId], queryFn: () => client.tools.listServers(projectId, { maxPageSize: 100 }), enabled: !!projectId });
  const [q, setQ] = useState("");
  const catalog = useQuery({ queryKey: ["toolCatalog", projectId, q], queryFn: () => client.tools.searchCatalog({ projectId, ...(q.trim() ? { q: q.trim() } : {}) }), enabled: !!projectId });
  const path = useQuery({ queryKey: ["apiPath", projectId], queryFn: async () => (await client.policy.show(projectId)).artifacts.find((a) => a.kind === "api")?.path as string | undefined, enabled: !!projectId });
  const [name, setName] = useState("");
  const [url, setUrl] = useState("");
  const create = useMutation({
    mutationFn: () => client.tools.createServer(projectId, { name, url } as never),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["mcpServers", projectId] }),
  });
  const request = useMutation({
    mutationFn: (e: { serverId: string; tool: string }) => client.tools.requestApproval(projectId, e.serverId, e.tool, { justification: "requested from the portal" }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["toolCatalog", projectId] }),
  });
  const gateway = config.gatewayUrl && path.data ? `${new URL(config.gatewayUrl, location.href).href.replace(/\/$/, "")}/${path.data}` : undefined;
  return (
    <>
      <PageHeader title="Tools">
        <ProjectPicker page="tools" />
      </PageHeader>
      {!projectId ? null : (
        <>
          <Section label="Register an MCP server">
            <Subtitle2 as="h2">Register an MCP server</Subtitle2>
            <FormGrid label="Register an MCP server" onSubmit={() => create.mutate()}>
              <Field label="Name" required>
                <Input value={name} onChange={(_, d) => setName(d.value)} />
              </Field>
              <Field label="URL" required>
                <Input type="url" value={url} onChange={(_, d) => setUrl(d.value)} />
              </Field>
              <Button appearance="primary" type="submit" disabled={!name || !url || create.isPending}>
                Register
              </Button>
            </FormGrid>
            <ErrorBar error={create.error} />
            {create.data ? <Notice>Registered: discovery reads its tools.</Notice> : null}
          </Section>
          <Section label="Servers">
            <Subtitle2 as="h2">Servers</Subtitle2>
            {servers.isPending ? <Loading label="Loading servers" /> : null}
            <ErrorBar error={servers.error} />
            {servers.data ? (
              <DataTable
                label="MCP servers"
                empty="No MCP server in this project."
                rows={servers.data.items}
                rowKey={(s) => s.id}
                columns={[
                  { key: "name", label: "Name" },
                  { key: "status", label: "Status" },
                  { key: "connect", label: "Connect", render: (s) => (gateway ? <code>{`${gateway}/mcp/${s.name}`}</code> : "publish first") },
                ]}
              />
            ) : null}
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
                  { key: "approval", label: "Approval", render: (e) => <Badge appearance="tint">{typeof e.approval === "string" ? e.approval : JSON.stringify(e.approval)}</Badge> },
                  { key: "risk", label: "Risk", render: (e) => [e.annotations.readOnly ? "read-only" : "writes", e.annotations.destructive ? "destructive" : "", e.findingCount ? `${e.findingCount} findings` : ""].filter(Boolean).join(", ") },
                  { key: "request", label: "", render: (e) => <Button size="small" onClick={() => request.mutate({ serverId: e.serverId, tool: e.tool })}>Request approval</Button> },
                ]}
              />
            ) : null}
          </Section>
        </>
      )}
    </>
  );
}
