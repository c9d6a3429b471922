import { Badge, Button, Field, Input, Radio, RadioGroup, Select, Subtitle2, Textarea } from "@fluentui/react-components";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useClient } from "../app/api.js";
import { LoadMore, useAllPages, usePaged } from "../app/paging.js";
import { ProjectPicker } from "../app/projects.js";
import { SecretDialog } from "../app/secret.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";

type Agent = Awaited<ReturnType<ReturnType<typeof useClient>["agents"]["list"]>>["items"][number];
const STATES = ["draft", "active", "deprecated", "retired", "blocked"] as const;

/** Where an agent comes from: registered here, or synced from a cloud (account, region). */
const origin = (a: Agent) => (a.provenance ? `${a.provenance.cloud} ${a.provenance.region}` : "registered here");

/**
 * A project's agents: register one (its AgentCard supplied or fetched, its endpoint, its guardrails), move it
 * through its lifecycle, switch it off and on, and issue its own key (shown once). Synced agents come from
 * the cloud connections (Connections screen); what the sync found is shown beside what is governed here.
 */
export default function Agents() {
  const { projectId = "" } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  // A synced cloud can bring thousands of agents: every page is there to act on.
  const agents = usePaged(["agents", projectId], (token) => client.agents.list(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }), { enabled: !!projectId });
  const refresh = () => void qc.invalidateQueries({ queryKey: ["agents", projectId] });
  const [secret, setSecret] = useState<{ name: string; key: string }>();

  const toggle = useMutation({ mutationFn: (a: Agent) => client.agents.update(projectId, a.id, { enabled: !a.enabled }, a.etag), onSuccess: refresh });
  // The key is created outside react-query's cache: its secret lives only in this screen's state.
  const [issuing, setIssuing] = useState<string>();
  const [issueError, setIssueError] = useState<unknown>();
  const issue = async (a: Agent) => {
    setIssuing(a.id);
    setIssueError(undefined);
    try {
      const k = await client.agents.issueKey(projectId, a.id, {});
      setSecret({ name: k.name, key: k.key });
      refresh();
    } catch (err) {
      setIssueError(err);
    } finally {
      setIssuing(undefined);
    }
  };

  return (
    <>
      <PageHeader title="Agents">
        <ProjectPicker page="agents" />
      </PageHeader>
      {projectId ? (
        <>
          <RegisterAgent projectId={projectId} onDone={refresh} />
          <Section label="Agents">
            <Subtitle2 as="h2">Agents</Subtitle2>
            {agents.isPending ? <Loading label="Loading agents" /> : null}
            <ErrorBar error={agents.error ?? toggle.error ?? issueError} onRetry={() => void agents.refetch()} />
            {agents.data ? (
              <DataTable
                label="Agents"
                empty="No agent in this project: register one, or sync a cloud connection."
                rows={agents.data.items}
                rowKey={(a) => a.id}
                columns={[
                  { key: "name", label: "Name" },
                  { key: "lifecycle", label: "Lifecycle", render: (a) => <Badge appearance="tint" data-testid={`agent-state-${a.name}`}>{a.lifecycle.state}{a.lifecycle.sunsetDate ? ` (sunset ${a.lifecycle.sunsetDate})` : ""}</Badge> },
                  { key: "enabled", label: "Served", render: (a) => (a.enabled ? "yes" : "switched off") },
                  { key: "origin", label: "Origin", render: origin },
                  { key: "card", label: "Card", render: (a) => (a.card ? `A2A ${a.card.version}, ${a.card.trust}${a.card.findings?.length ? `, ${a.card.findings.length} findings` : ""}` : "none") },
                  { key: "sync", label: "At the source", render: (a) => (a.sync ? `${a.sync.state}${a.sync.conflicts.length ? `, ${a.sync.conflicts.length} conflicts` : ""}` : "") },
                  { key: "key", label: "Key", render: (a) => (a.key ? `issued ${when(a.key.issuedAt)}` : "none") },
                  {
                    key: "actions",
                    label: "",
                    render: (a) => (
                      <span style={{ display: "flex", gap: 4, flexWrap: "wrap" }}>
                        <Button size="small" onClick={() => toggle.mutate(a)} aria-label={`${a.enabled ? "Switch off" : "Switch on"}: ${a.name}`}>
                          {a.enabled ? "Switch off" : "Switch on"}
                        </Button>
                        {a.key ? null : (
                          <Button size="small" disabled={issuing === a.id} onClick={() => void issue(a)} aria-label={`Issue key: ${a.name}`}>
                            Issue key
                          </Button>
                        )}
                      </span>
                    ),
                  },
                ]}
              />
            ) : null}
            <LoadMore list={agents} label="Load more agents" />
          </Section>
          {agents.data?.items.length ? <ChangeLifecycle projectId={projectId} agents={agents.data.items} onDone={refresh} /> : null}
          <SecretDialog secret={secret} onClose={() => setSecret(undefined)} />
          <Notice intent="info">
            Cloud agents arrive through the tenant&apos;s <Link to="/connections">cloud connections</Link>; a sync never undoes a block, a switch-off or the guardrails set here.
          </Notice>
        </>
      ) : null}
    </>
  );
}

/** Registers an agent: its card inline or fetched from its endpoint, and the models it may use. */
function RegisterAgent({ projectId, onDone }: { projectId: string; onDone: () => void }) {
  const client = useClient();
  const [name, setName] = useState("");
  const [endpoint, setEndpoint] = useState("");
  const [protocol, setProtocol] = useState<"a2a" | "http">("a2a");
  const [cardFrom, setCardFrom] = useState<"fetch" | "paste" | "none">("fetch");
  const [card, setCard] = useState("");
  const [cardUrl, setCardUrl] = useState("");
  const [environment, setEnvironment] = useState<"dev" | "test" | "prod">("dev");
  const [models, setModels] = useState<string[]>([]);
  // The models an agent may use: every one of them (all pages).
  const projectModels = useAllPages(["models", projectId, "all"], () => client.models.list(projectId, { maxPageSize: 100 }));
  const create = useMutation({
    mutationFn: () => {
      let cardSource: { card: Record<string, unknown> } | { url: string } | undefined;
      if (cardFrom === "fetch") cardSource = { url: cardUrl };
      if (cardFrom === "paste") {
        try {
          cardSource = { card: JSON.parse(card) as Record<string, unknown> };
        } catch {
          throw new Error("The AgentCard is not JSON.");
        }
      }
      return client.agents.create(projectId, {
        name,
        environment,
        ...(endpoint ? { endpoint: { url: endpoint, protocol } } : {}),
        ...(cardSource ? { card: cardSource } : {}),
        guardrails: { models },
      });
    },
    onSuccess: () => {
      setName("");
      onDone();
    },
  });
  return (
    <Section label="Register an agent">
      <Subtitle2 as="h2">Register an agent</Subtitle2>
      <FormGrid label="Register an agent" onSubmit={() => create.mutate()}>
        <Field label="Agent name" required>
          <Input value={name} onChange={(_, d) => setName(d.value)} />
        </Field>
        <Field label="Endpoint" hint="Where the gateway forwards calls; empty: the interface its AgentCard names">
          <Input type="url" value={endpoint} onChange={(_, d) => setEndpoint(d.value)} />
        </Field>
        <Field label="Protocol">
          <Select value={protocol} onChange={(_, d) => setProtocol(d.value as "a2a" | "http")}>
            <option value="a2a">A2A</option>
            <option value="http">HTTP</option>
          </Select>
        </Field>
        <Field label="Environment">
          <Select value={environment} onChange={(_, d) => setEnvironment(d.value as typeof environment)}>
            <option value="dev">dev</option>
            <option value="test">test</option>
            <option value="prod">prod</option>
          </Select>
        </Field>
        <Field label="AgentCard">
          <RadioGroup layout="horizontal" value={cardFrom} onChange={(_, d) => setCardFrom(d.value as typeof cardFrom)}>
            <Radio value="fetch" label="Fetch from the endpoint" />
            <Radio value="paste" label="Paste JSON" />
            <Radio value="none" label="None" />
          </RadioGroup>
        </Field>
        {cardFrom === "fetch" ? (
          <Field label="Agent URL" required hint="Its card is read from /.well-known/agent-card.json (or give the card's own URL)">
            <Input type="url" value={cardUrl} onChange={(_, d) => setCardUrl(d.value)} />
          </Field>
        ) : null}
        {cardFrom === "paste" ? (
          <Field label="AgentCard JSON">
            <Textarea value={card} onChange={(_, d) => setCard(d.value)} />
          </Field>
        ) : null}
        <Field label="Models its key may call">
          <Select multiple value={models} onChange={(e) => setModels([...(e.target as HTMLSelectElement).selectedOptions].map((o) => o.value))}>
            {(projectModels.data?.items ?? []).map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </Select>
        </Field>
        <Button appearance="primary" type="submit" disabled={!name || create.isPending || (cardFrom === "fetch" && !cardUrl)}>
          Register agent
        </Button>
      </FormGrid>
      <ErrorBar error={create.error} />
      {create.data ? <Notice>Registered {create.data.name} ({create.data.lifecycle.state}).</Notice> : null}
    </Section>
  );
}

/** draft → active → deprecated (with a sunset date) → retired, and blocked from anywhere. */
function ChangeLifecycle({ projectId, agents, onDone }: { projectId: string; agents: Agent[]; onDone: () => void }) {
  const client = useClient();
  const [agentId, setAgentId] = useState("");
  const [to, setTo] = useState<(typeof STATES)[number]>("active");
  const [sunsetDate, setSunsetDate] = useState("");
  const [reason, setReason] = useState("");
  const change = useMutation({
    mutationFn: () => client.agents.transition(projectId, agentId, { to, ...(to === "deprecated" && sunsetDate ? { sunsetDate } : {}), ...(reason ? { reason } : {}) }),
    onSuccess: onDone,
  });
  return (
    <Section label="Change an agent's lifecycle">
      <Subtitle2 as="h2">Change an agent&apos;s lifecycle</Subtitle2>
      <FormGrid label="Change an agent's lifecycle" onSubmit={() => change.mutate()}>
        <Field label="Agent" required>
          <Select value={agentId} onChange={(_, d) => setAgentId(d.value)}>
            <option value="">Choose an agent</option>
            {agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name} ({a.lifecycle.state})
              </option>
            ))}
          </Select>
        </Field>
        <Field label="New state">
          <Select value={to} onChange={(_, d) => setTo(d.value as typeof to)}>
            {STATES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </Select>
        </Field>
        {to === "deprecated" ? (
          <Field label="Sunset date" required>
            <Input type="date" value={sunsetDate} onChange={(_, d) => setSunsetDate(d.value)} />
          </Field>
        ) : null}
        <Field label="Reason">
          <Input value={reason} onChange={(_, d) => setReason(d.value)} />
        </Field>
        <Button appearance="primary" type="submit" disabled={!agentId || change.isPending}>
          Change state
        </Button>
      </FormGrid>
      <ErrorBar error={change.error} />
      {change.data ? <Notice>{change.data.name} is {change.data.lifecycle.state}.</Notice> : null}
    </Section>
  );
}
