import { Badge, Subtitle2 } from "@fluentui/react-components";
import { useQuery } from "@tanstack/react-query";
import { useParams } from "react-router";
import { useClient } from "../app/api.js";
import { useSession, hasAny } from "../app/session.js";
import { DataTable, ErrorBar, Loading, PageHeader, Section, when } from "../app/ui.js";
import { ProjectPicker } from "../app/projects.js";

/** Agents of a project (lifecycle, origin, guardrails) and the tenant's cloud connections with their sync status. */
export default function Agents() {
  const { projectId = "" } = useParams();
  const client = useClient();
  const { session } = useSession();
  const agents = useQuery({ queryKey: ["agents", projectId], queryFn: () => client.agents.list(projectId, { maxPageSize: 100 }), enabled: !!projectId });
  const connections = useQuery({ queryKey: ["connections"], queryFn: () => client.connections.list({}), enabled: hasAny(session, ["TenantAdmin", "Auditor"]) });
  return (
    <>
      <PageHeader title="Agents">
        <ProjectPicker page="agents" />
      </PageHeader>
      {projectId ? (
        <Section label="Agents">
          <Subtitle2 as="h2">Agents</Subtitle2>
          {agents.isPending ? <Loading label="Loading agents" /> : null}
          <ErrorBar error={agents.error} />
          {agents.data ? (
            <DataTable
              label="Agents"
              empty="No agent in this project."
              rows={agents.data.items}
              rowKey={(a) => a.id}
              columns={[
                { key: "name", label: "Name" },
                { key: "state", label: "Lifecycle", render: (a) => <Badge appearance="tint">{String((a as { state?: string }).state ?? "")}</Badge> },
                { key: "source", label: "Origin", render: (a) => String((a as { source?: { cloud?: string } }).source?.cloud ?? "local") },
                { key: "owner", label: "Owner" },
              ]}
            />
          ) : null}
        </Section>
      ) : null}
      {connections.data ? (
        <Section label="Cloud connections">
          <Subtitle2 as="h2">Cloud connections</Subtitle2>
          <DataTable
            label="Cloud connections"
            empty="No cloud connection."
            rows={connections.data.items}
            rowKey={(c) => c.id}
            columns={[
              { key: "name", label: "Name" },
              { key: "cloud", label: "Cloud" },
              { key: "enabled", label: "Sync", render: (c) => (c.enabled ? "on" : "off") },
              { key: "last", label: "Last run", render: (c) => when((c as { lastRun?: { finishedAt?: string } }).lastRun?.finishedAt) },
            ]}
          />
        </Section>
      ) : null}
      <ErrorBar error={connections.error} />
    </>
  );
}
