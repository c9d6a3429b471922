import { Badge, Button, Field, Input, ProgressBar, Select, Subtitle2 } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useClient } from "../app/api.js";
import { LoadMore, usePaged } from "../app/paging.js";
import { ProjectSelect } from "../app/projects.js";
import { hasAny, useSession } from "../app/session.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";

type Client = ReturnType<typeof useClient>;
type Connection = Awaited<ReturnType<Client["connections"]["list"]>>["items"][number];
type SyncRun = Awaited<ReturnType<Client["connections"]["run"]>>;
type Cloud = "bedrock" | "vertex" | "foundry";

const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);

/**
 * The tenant's cloud connections (Amazon Bedrock, Google Vertex AI, Azure AI Foundry): create one, switch
 * its sync on and off, sync it now and follow the run (regions, counts, errors) until it ends.
 */
export default function Connections() {
  const client = useClient();
  const qc = useQueryClient();
  const { session } = useSession();
  const admin = hasAny(session, ["TenantAdmin"]);
  const connections = usePaged(["connections"], (token) => client.connections.list({ maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }));
  const refresh = () => void qc.invalidateQueries({ queryKey: ["connections"] });
  const toggle = useMutation({ mutationFn: (c: Connection) => client.connections.update(c.id, { enabled: !c.enabled }, c.etag), onSuccess: refresh });
  const [following, setFollowing] = useState<{ connectionId: string; runId: string; name: string }>();
  const sync = useMutation({
    mutationFn: (c: Connection) => client.connections.sync(c.id),
    onSuccess: (run, c) => setFollowing({ connectionId: c.id, runId: run.id, name: c.name }),
  });
  return (
    <>
      <PageHeader title="Cloud connections" />
      {admin ? <CreateConnection onDone={refresh} /> : null}
      <Section label="Connections">
        <Subtitle2 as="h2">Connections</Subtitle2>
        {connections.isPending ? <Loading label="Loading connections" /> : null}
        <ErrorBar error={connections.error ?? toggle.error ?? sync.error} onRetry={() => void connections.refetch()} />
        {connections.data ? (
          <DataTable
            label="Cloud connections"
            empty="No cloud connection: agents are only registered by hand."
            rows={connections.data.items}
            rowKey={(c) => c.id}
            columns={[
              { key: "name", label: "Name" },
              { key: "cloud", label: "Cloud" },
              { key: "regions", label: "Regions", render: (c) => c.regions.join(", ") },
              { key: "enabled", label: "Sync", render: (c) => (c.enabled ? `every ${c.schedule.intervalMinutes} min` : "off") },
              { key: "last", label: "Last sync", render: (c) => (c.lastSync ? `${c.lastSync.status} ${when(c.lastSync.finishedAt ?? c.lastSync.startedAt)}` : "never") },
              {
                key: "actions",
                label: "",
                render: (c) =>
                  admin ? (
                    <span style={{ display: "flex", gap: 4 }}>
                      <Button size="small" disabled={!c.enabled || sync.isPending} onClick={() => sync.mutate(c)} aria-label={`Sync now: ${c.name}`}>
                        Sync now
                      </Button>
                      <Button size="small" onClick={() => toggle.mutate(c)} aria-label={`${c.enabled ? "Switch sync off" : "Switch sync on"}: ${c.name}`}>
                        {c.enabled ? "Switch sync off" : "Switch sync on"}
                      </Button>
                    </span>
                  ) : null,
              },
            ]}
          />
        ) : null}
        <LoadMore list={connections} label="Load more connections" />
      </Section>
      {following ? <RunProgress {...following} onEnd={refresh} /> : null}
    </>
  );
}

/** A sync run, polled until it ends: the regions done, the counts so far, what failed. */
function RunProgress({ connectionId, runId, name, onEnd }: { connectionId: string; runId: string; name: string; onEnd: () => void }) {
  const client = useClient();
  const run = useQuery({
    queryKey: ["syncRun", connectionId, runId],
    queryFn: async () => {
      const r = await client.connections.run(connectionId, runId);
      if (r.status !== "running") onEnd();
      return r;
    },
    refetchInterval: (q) => (q.state.data && q.state.data.status !== "running" ? false : 1000),
  });
  const r: SyncRun | undefined = run.data;
  const regions = r?.regions.length ?? 0;
  return (
    <Section label={`Sync of ${name}`}>
      <Subtitle2 as="h2">
        Sync of {name} <Badge appearance="filled" color={!r || r.status === "running" ? "informative" : r.status === "completed" ? "success" : "danger"} data-testid="sync-status">{r?.status ?? "starting"}</Badge>
      </Subtitle2>
      <ErrorBar error={run.error} />
      {r?.status === "running" ? <ProgressBar aria-label="Sync progress" /> : null}
      {r ? (
        <>
          <p>
            {regions} region{regions === 1 ? "" : "s"} done; {r.counts.listed} listed, {r.counts.discovered} new, {r.counts.changed} changed, {r.counts.unchanged} unchanged, {r.counts.removedAtSource} gone at the source
            {r.counts.malformed ? `, ${r.counts.malformed} malformed` : ""}
            {r.counts.conflicts ? `, ${r.counts.conflicts} conflicts (the local value was kept)` : ""}
            {r.durationMs !== undefined ? `; ${(r.durationMs / 1000).toFixed(1)} s` : ""}.
          </p>
          <DataTable
            label="Regions"
            empty="No region finished yet."
            rows={r.regions}
            rowKey={(g) => g.region}
            columns={[
              { key: "region", label: "Region" },
              { key: "status", label: "Status" },
              { key: "pages", label: "Pages" },
              { key: "listed", label: "Listed", render: (g) => String(g.counts.listed) },
              { key: "error", label: "Error", render: (g) => g.error?.message ?? "" },
            ]}
          />
        </>
      ) : null}
    </Section>
  );
}

/** A new connection: the cloud's scope, the regions, credentials (write-only) and the schedule. */
function CreateConnection({ onDone }: { onDone: () => void }) {
  const client = useClient();
  const [name, setName] = useState("");
  const [cloud, setCloud] = useState<Cloud>("bedrock");
  const [projectId, setProjectId] = useState("");
  const [account, setAccount] = useState("");
  const [regions, setRegions] = useState("");
  const [endpoints, setEndpoints] = useState("");
  const [localEndpoint, setLocalEndpoint] = useState("");
  const [credential, setCredential] = useState<"workloadIdentity" | "awsAccessKey" | "gcpServiceAccountKey" | "accessToken">("workloadIdentity");
  const [keyId, setKeyId] = useState("");
  const [secret, setSecret] = useState("");
  const [interval, setIntervalMinutes] = useState("360");
  // Workload identity federation: the AWS role assumed, or the Google pool provider and service account.
  const [roleArn, setRoleArn] = useState("");
  const [poolProvider, setPoolProvider] = useState("");
  const [serviceAccount, setServiceAccount] = useState("");
  const create = useMutation({
    mutationFn: () => {
      const regionList = list(regions);
      // Foundry: one project endpoint per region, "region=url" pairs.
      const projectEndpoints = Object.fromEntries(list(endpoints).map((pair) => pair.split("=").map((s) => s.trim()) as [string, string]));
      const scope =
        cloud === "bedrock"
          ? { cloud, accountId: account, ...(roleArn ? { roleArn } : {}), ...(localEndpoint ? { endpoint: localEndpoint } : {}) }
          : cloud === "vertex"
            ? { cloud, projectId: account, ...(poolProvider ? { workloadIdentityProvider: poolProvider } : {}), ...(serviceAccount ? { serviceAccount } : {}), ...(localEndpoint ? { endpoint: localEndpoint } : {}) }
            : { cloud, projectEndpoints };
      const credentials =
        credential === "awsAccessKey"
          ? { kind: credential, accessKeyId: keyId, secretAccessKey: secret }
          : credential === "gcpServiceAccountKey"
            ? { kind: credential, json: secret }
            : credential === "accessToken"
              ? { kind: credential, token: secret }
              : { kind: credential };
      return client.connections.create({
        name,
        projectId,
        scope,
        regions: cloud === "foundry" ? Object.keys(projectEndpoints) : regionList,
        credentials,
        schedule: { intervalMinutes: Number(interval) },
      } as Parameters<Client["connections"]["create"]>[0]);
    },
    onSuccess: () => {
      // The secret leaves this screen's state as soon as the server has it.
      setSecret("");
      setName("");
      onDone();
    },
  });
  return (
    <Section label="Create a connection">
      <Subtitle2 as="h2">Create a connection</Subtitle2>
      <FormGrid label="Create a connection" onSubmit={() => create.mutate()}>
        <Field label="Connection name" required hint="lower-case letters, digits and -">
          <Input value={name} onChange={(_, d) => setName(d.value)} />
        </Field>
        <Field label="Cloud">
          <Select value={cloud} onChange={(_, d) => setCloud(d.value as Cloud)}>
            <option value="bedrock">Amazon Bedrock</option>
            <option value="vertex">Google Vertex AI</option>
            <option value="foundry">Azure AI Foundry</option>
          </Select>
        </Field>
        <ProjectSelect label="Register agents in" value={projectId} onChange={setProjectId} none="Choose a project" required />
        {cloud === "foundry" ? (
          <Field label="Project endpoints" hint="region=https://<resource>.services.ai.azure.com/api/projects/<project>, comma-separated">
            <Input value={endpoints} onChange={(_, d) => setEndpoints(d.value)} />
          </Field>
        ) : (
          <>
            <Field label={cloud === "bedrock" ? "AWS account id" : "Google Cloud project id"} required>
              <Input value={account} onChange={(_, d) => setAccount(d.value)} />
            </Field>
            <Field label="Regions" required hint="comma-separated">
              <Input value={regions} onChange={(_, d) => setRegions(d.value)} />
            </Field>
            <Field label="Service endpoint (local fakes only)" hint="Leave empty in Azure">
              <Input type="url" value={localEndpoint} onChange={(_, d) => setLocalEndpoint(d.value)} />
            </Field>
          </>
        )}
        <Field label="Credentials">
          <Select value={credential} onChange={(_, d) => setCredential(d.value as typeof credential)}>
            <option value="workloadIdentity">Workload identity (no secret)</option>
            {cloud === "bedrock" ? <option value="awsAccessKey">AWS access key</option> : null}
            {cloud === "vertex" ? <option value="gcpServiceAccountKey">Service account key (JSON)</option> : null}
            <option value="accessToken">Access token (local fakes only)</option>
          </Select>
        </Field>
        {credential === "workloadIdentity" && cloud === "bedrock" ? (
          <Field label="IAM role ARN" required hint="The role the control plane's managed identity assumes (its trust policy names Entra ID)">
            <Input value={roleArn} onChange={(_, d) => setRoleArn(d.value)} />
          </Field>
        ) : null}
        {credential === "workloadIdentity" && cloud === "vertex" ? (
          <>
            <Field label="Workload identity pool provider" hint="//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>">
              <Input value={poolProvider} onChange={(_, d) => setPoolProvider(d.value)} />
            </Field>
            <Field label="Service account to impersonate">
              <Input value={serviceAccount} onChange={(_, d) => setServiceAccount(d.value)} />
            </Field>
          </>
        ) : null}
        {credential === "awsAccessKey" ? (
          <Field label="Access key id" required>
            <Input value={keyId} onChange={(_, d) => setKeyId(d.value)} />
          </Field>
        ) : null}
        {credential !== "workloadIdentity" ? (
          <Field label="Secret" required hint="Write-only: kept in the secret store, never shown again">
            <Input type="password" autoComplete="off" value={secret} onChange={(_, d) => setSecret(d.value)} />
          </Field>
        ) : null}
        <Field label="Sync every (minutes)">
          <Input type="number" min={15} value={interval} onChange={(_, d) => setIntervalMinutes(d.value)} />
        </Field>
        <Button appearance="primary" type="submit" disabled={!name || !projectId || create.isPending}>
          Create connection
        </Button>
      </FormGrid>
      <ErrorBar error={create.error} />
      {create.data ? <Notice>Created {create.data.name}: sync it now, or wait for its schedule.</Notice> : null}
    </Section>
  );
}
