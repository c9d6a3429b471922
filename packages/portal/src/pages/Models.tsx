import { Badge, Button, Field, Input, Select, Subtitle2 } from "@fluentui/react-components";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useParams } from "react-router";
import { useClient } from "../app/api.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section } from "../app/ui.js";
import { LoadMore, useAllPages, usePaged } from "../app/paging.js";
import { ProjectPicker } from "../app/projects.js";

const PROVIDERS = ["azure-openai", "openai"] as const;

/** Models of a project: register (with its first backend), add backends (failover, load balancing), deprecate with a sunset date, block, reactivate. */
export default function Models() {
  const { projectId = "" } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  // The table a page at a time; the backend form's model picker offers every model. Both keys are under
  // ["models", projectId], which every change to the project's models invalidates.
  const models = usePaged(["models", projectId, "paged"], (token) => client.models.list(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }), { enabled: !!projectId });
  const allModels = useAllPages(["models", projectId, "all"], () => client.models.list(projectId, { maxPageSize: 100 }), { enabled: !!projectId });
  const [name, setName] = useState("");
  const [provider, setProvider] = useState<(typeof PROVIDERS)[number]>("azure-openai");
  const [modelName, setModelName] = useState("");
  const [url, setUrl] = useState("");
  const [region, setRegion] = useState("eastus");
  const [providerKey, setProviderKey] = useState("");
  const [sunset, setSunset] = useState("");
  const refresh = () => void qc.invalidateQueries({ queryKey: ["models", projectId] });
  const register = useMutation({
    mutationFn: () =>
      client.models.create(projectId, {
        name,
        provider,
        modelName: modelName || name,
        backends: [
          {
            id: "primary",
            url,
            region,
            credential: providerKey
              ? { type: "apiKey", header: provider === "openai" ? "Authorization" : "api-key", key: providerKey }
              : { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" },
          },
        ],
      }),
    onSuccess: () => {
      // The provider key goes to the secret store; the form forgets it.
      setProviderKey("");
      setName("");
      refresh();
    },
  });
  const change = useMutation({
    mutationFn: ({ id, etag, status }: { id: string; etag: string; status: "active" | "deprecated" | "blocked" }) =>
      client.models.update(projectId, id, status === "deprecated" ? { status, sunsetDate: sunset } : { status, sunsetDate: null }, etag),
    onSuccess: refresh,
  });
  return (
    <>
      <PageHeader title="Models">
        <ProjectPicker page="models" />
      </PageHeader>
      {!projectId ? null : (
        <>
          <Section label="Register a model">
            <Subtitle2 as="h2">Register a model</Subtitle2>
            <FormGrid label="Register a model" onSubmit={() => register.mutate()}>
              <Field label="Name" required hint="What callers send as model">
                <Input value={name} onChange={(_, d) => setName(d.value)} />
              </Field>
              <Field label="Provider">
                <Select value={provider} onChange={(_, d) => setProvider(d.value as (typeof PROVIDERS)[number])}>
                  {PROVIDERS.map((p) => (
                    <option key={p}>{p}</option>
                  ))}
                </Select>
              </Field>
              <Field label="Deployment / model name">
                <Input value={modelName} onChange={(_, d) => setModelName(d.value)} placeholder={name} />
              </Field>
              <Field label="Backend URL" required>
                <Input type="url" value={url} onChange={(_, d) => setUrl(d.value)} placeholder="https://…openai.azure.com" />
              </Field>
              <Field label="Region" required>
                <Input value={region} onChange={(_, d) => setRegion(d.value)} />
              </Field>
              <Field label="Provider key" hint="Kept in the secret store, never shown again; empty: managed identity">
                <Input type="password" autoComplete="off" value={providerKey} onChange={(_, d) => setProviderKey(d.value)} />
              </Field>
              <Button appearance="primary" type="submit" disabled={register.isPending || !name || !url}>
                Register model
              </Button>
            </FormGrid>
            <ErrorBar error={register.error} />
            {register.data ? <Notice>Model {register.data.name} registered: publish the policy to put it at the gateway.</Notice> : null}
          </Section>
          <Section label="Registered models">
            <Subtitle2 as="h2">Registered models</Subtitle2>
            <Field label="Sunset date for deprecations">
              <Input type="date" value={sunset} onChange={(_, d) => setSunset(d.value)} />
            </Field>
            <ErrorBar error={change.error} />
            {models.isPending ? <Loading label="Loading models" /> : null}
            <ErrorBar error={models.error} onRetry={() => void models.refetch()} />
            {models.data ? (
              <DataTable
                label="Models"
                empty="No model registered in this project."
                rows={models.data.items}
                rowKey={(m) => m.id}
                columns={[
                  { key: "name", label: "Name" },
                  { key: "provider", label: "Provider" },
                  { key: "status", label: "Status", render: (m) => <Badge appearance="tint" color={m.status === "active" ? "success" : m.status === "blocked" ? "danger" : "warning"}>{m.status}{m.sunsetDate ? ` until ${m.sunsetDate}` : ""}</Badge> },
                  { key: "backends", label: "Backends", render: (m) => <span data-testid={`backends-${m.name}`}>{m.backends.map((b) => `${b.id} (${b.region}, priority ${b.priority}, weight ${b.weight})`).join("; ")}</span> },
                  {
                    key: "actions",
                    label: "Actions",
                    render: (m) => (
                      <>
                        {m.status !== "deprecated" ? (
                          <Button size="small" disabled={!sunset} onClick={() => change.mutate({ id: m.id, etag: m.etag, status: "deprecated" })} aria-label={`Deprecate ${m.name}`}>
                            Deprecate
                          </Button>
                        ) : null}
                        {m.status !== "blocked" ? (
                          <Button size="small" onClick={() => change.mutate({ id: m.id, etag: m.etag, status: "blocked" })} aria-label={`Block ${m.name}`}>
                            Block
                          </Button>
                        ) : null}
                        {m.status !== "active" ? (
                          <Button size="small" onClick={() => change.mutate({ id: m.id, etag: m.etag, status: "active" })} aria-label={`Reactivate ${m.name}`}>
                            Reactivate
                          </Button>
                        ) : null}
                      </>
                    ),
                  },
                ]}
              />
            ) : null}
            <LoadMore list={models} label="Load more models" />
          </Section>
          {allModels.data?.items.length ? <AddBackend projectId={projectId} models={allModels.data.items} onDone={refresh} /> : null}
        </>
      )}
    </>
  );
}

type Model = Awaited<ReturnType<ReturnType<typeof useClient>["models"]["list"]>>["items"][number];

/**
 * Another backend for a model: the pool fails over by priority (1 first) and balances by weight within a
 * priority. The model's other backends are sent as they are (a provider key is kept, never re-entered).
 */
function AddBackend({ projectId, models, onDone }: { projectId: string; models: Model[]; onDone: () => void }) {
  const client = useClient();
  const [modelId, setModelId] = useState("");
  const [id, setId] = useState("");
  const [url, setUrl] = useState("");
  const [region, setRegion] = useState("");
  const [priority, setPriority] = useState("2");
  const [weight, setWeight] = useState("1");
  const [key, setKey] = useState("");
  const add = useMutation({
    mutationFn: () => {
      const model = models.find((m) => m.id === modelId)!;
      const kept = model.backends.map((b) => ({
        id: b.id,
        url: b.url,
        region: b.region,
        priority: b.priority,
        weight: b.weight,
        ...(b.version ? { version: b.version } : {}),
        credential: b.credential.type === "apiKey" ? { type: "apiKey" as const, header: b.credential.header, keep: true as const } : { type: "managedIdentity" as const, audience: b.credential.audience },
      }));
      const header = model.provider === "openai" ? ("Authorization" as const) : ("api-key" as const);
      const added = {
        id,
        url,
        region,
        priority: Number(priority),
        weight: Number(weight),
        credential: key ? { type: "apiKey" as const, header, key } : { type: "managedIdentity" as const, audience: "https://cognitiveservices.azure.com" },
      };
      return client.models.update(projectId, model.id, { backends: [...kept, added] }, model.etag);
    },
    onSuccess: () => {
      setKey("");
      setId("");
      onDone();
    },
  });
  return (
    <Section label="Add a backend">
      <Subtitle2 as="h2">Add a backend</Subtitle2>
      <FormGrid label="Add a backend" onSubmit={() => add.mutate()}>
        <Field label="Model" required>
          <Select value={modelId} onChange={(_, d) => setModelId(d.value)}>
            <option value="">Choose a model</option>
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </Select>
        </Field>
        <Field label="Backend id" required hint="lower-case letters, digits and -">
          <Input value={id} onChange={(_, d) => setId(d.value)} />
        </Field>
        <Field label="New backend URL" required>
          <Input type="url" value={url} onChange={(_, d) => setUrl(d.value)} />
        </Field>
        <Field label="Backend region" required>
          <Input value={region} onChange={(_, d) => setRegion(d.value)} />
        </Field>
        <Field label="Priority" hint="1 is tried first; higher numbers are failover">
          <Input type="number" min={1} max={100} value={priority} onChange={(_, d) => setPriority(d.value)} />
        </Field>
        <Field label="Weight" hint="Share of traffic among backends of one priority">
          <Input type="number" min={1} max={100} value={weight} onChange={(_, d) => setWeight(d.value)} />
        </Field>
        <Field label="Its provider key" hint="Kept in the secret store, never shown again; empty: managed identity">
          <Input type="password" autoComplete="off" value={key} onChange={(_, d) => setKey(d.value)} />
        </Field>
        <Button appearance="primary" type="submit" disabled={!modelId || !id || !url || !region || add.isPending}>
          Add backend
        </Button>
      </FormGrid>
      <ErrorBar error={add.error} />
      {add.data ? <Notice>{add.data.name} has {add.data.backends.length} backends: publish to put the pool at the gateway.</Notice> : null}
    </Section>
  );
}
