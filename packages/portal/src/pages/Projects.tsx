import { Button, Checkbox, Field, Input, Select, Subtitle2, Link as FluentLink } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useClient } from "../app/api.js";
import { useSession } from "../app/session.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";
import { LoadMore } from "../app/paging.js";
import { usePagedProjects } from "../app/projects.js";

const ENVIRONMENTS = ["sandbox", "dev", "test", "prod"] as const;

export default function Projects() {
  const client = useClient();
  const { session } = useSession();
  const { projectId } = useParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const projects = usePagedProjects();
  const [name, setName] = useState("");
  const [environment, setEnvironment] = useState<(typeof ENVIRONMENTS)[number]>("dev");
  const [owner, setOwner] = useState(session?.user ?? "");
  const [reviewDate, setReviewDate] = useState("");
  const create = useMutation({
    mutationFn: () => client.projects.create({ name, environment, owner, ...(reviewDate ? { reviewDate } : {}) }),
    onSuccess: (p) => {
      void qc.invalidateQueries({ queryKey: ["projects"] });
      setName("");
      navigate(`/projects/${p.id}`);
    },
  });
  useEffect(() => {
    if (projectId) sessionStorage.setItem("aigov.lastProject", projectId);
  }, [projectId]);
  const selected = useQuery({ queryKey: ["project", projectId], queryFn: () => client.projects.get(projectId!), enabled: !!projectId });
  return (
    <>
      <PageHeader title="Projects" />
      <Section label="Create a project">
        <Subtitle2 as="h2">Create a project</Subtitle2>
        <FormGrid label="Create a project" onSubmit={() => create.mutate()}>
          <Field label="Name" required>
            <Input value={name} onChange={(_, d) => setName(d.value)} />
          </Field>
          <Field label="Environment">
            <Select value={environment} onChange={(_, d) => setEnvironment(d.value as (typeof ENVIRONMENTS)[number])}>
              {ENVIRONMENTS.map((e) => (
                <option key={e}>{e}</option>
              ))}
            </Select>
          </Field>
          <Field label="Owner" required>
            <Input value={owner} onChange={(_, d) => setOwner(d.value)} />
          </Field>
          <Field label="Review date (sandbox)">
            <Input type="date" value={reviewDate} onChange={(_, d) => setReviewDate(d.value)} />
          </Field>
          <Button appearance="primary" type="submit" disabled={create.isPending || !name}>
            Create project
          </Button>
        </FormGrid>
        <ErrorBar error={create.error} />
        {create.data ? <Notice>Project {create.data.name} created.</Notice> : null}
      </Section>
      <Section label="Your projects">
        <Subtitle2 as="h2">Your projects</Subtitle2>
        {projects.isPending ? <Loading label="Loading projects" /> : null}
        <ErrorBar error={projects.error} onRetry={() => void projects.refetch()} />
        {projects.data ? (
          <DataTable
            label="Projects"
            empty="No project yet: create one above."
            rows={projects.data.items}
            rowKey={(p) => p.id}
            columns={[
              { key: "name", label: "Name", render: (p) => <Link to={`/projects/${p.id}`}>{p.name}</Link> },
              { key: "environment", label: "Environment" },
              { key: "lifecycleStage", label: "Stage" },
              { key: "owner", label: "Owner" },
              { key: "createdAt", label: "Created", render: (p) => when(p.createdAt) },
            ]}
          />
        ) : null}
        <LoadMore list={projects} label="Load more projects" />
      </Section>
      {projectId ? (
        <Section label="Project">
          {selected.isPending ? <Loading label="Loading project" /> : null}
          <ErrorBar error={selected.error} />
          {selected.data ? (
            <>
              <Subtitle2 as="h2">{selected.data.name}</Subtitle2>
              <p>
                <code>{selected.data.id}</code> · {selected.data.environment} · owner {selected.data.owner}
                {selected.data.lock ? ` · locked: ${selected.data.lock.reason}` : ""}
              </p>
              <GateDriftNotice project={selected.data} />
              <nav aria-label="Project screens">
                {(["models", "policy", "keys", "tools", "agents"] as const).map((page) => (
                  <FluentLink key={page} as="a" href={`/portal/projects/${selected.data.id}/${page}`} onClick={(e) => (e.preventDefault(), navigate(`/projects/${selected.data.id}/${page}`))} style={{ marginRight: 16 }}>
                    {page[0]!.toUpperCase() + page.slice(1)}
                  </FluentLink>
                ))}
              </nav>
              <KeyPolicyForm project={selected.data} />
            </>
          ) : null}
        </Section>
      ) : null}
    </>
  );
}

type Project = Awaited<ReturnType<ReturnType<typeof useClient>["projects"]["get"]>>;

/**
 * The time-bound promotion gates a project in its environment fails now (the lifecycle job's record):
 * nothing is locked, the record is for the people who fix it; the live checklist says why now.
 */
function GateDriftNotice({ project }: { project: Project }) {
  const drift = project.gateDrift;
  if (!drift) return null;
  return (
    <Section label="Gate drift">
      <Notice intent="warning">
        <span data-testid="gate-drift">
          Out of its {project.environment} gates since {when(drift.since)}: {drift.gates.map((g) => g.gate).join(", ")}. Nothing is locked; the keys keep working.
        </span>
      </Notice>
      <DataTable
        label="Failing gates"
        empty="No failing gate."
        rows={drift.gates}
        rowKey={(g) => g.gate}
        columns={[
          { key: "gate", label: "Gate" },
          { key: "since", label: "Failing since", render: (g) => when(g.since) },
          { key: "detail", label: "Why (when it started failing)" },
        ]}
      />
    </Section>
  );
}

/** The project's key policy: lifetimes, scheduled rotation, and whether keys asked for by non-admins need an approval. */
function KeyPolicyForm({ project }: { project: Project }) {
  const client = useClient();
  const qc = useQueryClient();
  const policy = project.keyPolicy;
  const [requireApproval, setRequireApproval] = useState(policy?.requireApproval ?? false);
  const [defaultTtlDays, setDefaultTtlDays] = useState(String(policy?.defaultTtlDays ?? 90));
  const [maxTtlDays, setMaxTtlDays] = useState(String(policy?.maxTtlDays ?? 365));
  const [rotateAfterDays, setRotateAfterDays] = useState(policy?.rotateAfterDays ? String(policy.rotateAfterDays) : "");
  const save = useMutation({
    mutationFn: () =>
      client.projects.update(
        project.id,
        {
          keyPolicy: {
            requireApproval,
            defaultTtlDays: Number(defaultTtlDays),
            maxTtlDays: Number(maxTtlDays),
            ...(rotateAfterDays ? { rotateAfterDays: Number(rotateAfterDays) } : {}),
            ...(policy?.rotationOverlapHours !== undefined ? { rotationOverlapHours: policy.rotationOverlapHours } : {}),
          },
        },
        project.etag,
      ),
    onSuccess: (p) => qc.setQueryData(["project", project.id], p),
  });
  return (
    <FormGrid label="Key policy" onSubmit={() => save.mutate()}>
      <Checkbox label="Keys need an approval (unless a project admin creates them)" checked={requireApproval} onChange={(_, d) => setRequireApproval(d.checked === true)} />
      <Field label="Default key lifetime (days)">
        <Input type="number" min={1} max={365} value={defaultTtlDays} onChange={(_, d) => setDefaultTtlDays(d.value)} />
      </Field>
      <Field label="Longest key lifetime (days)">
        <Input type="number" min={1} max={365} value={maxTtlDays} onChange={(_, d) => setMaxTtlDays(d.value)} />
      </Field>
      <Field label="Rotate keys after (days)" hint="Empty: no scheduled rotation">
        <Input type="number" min={1} max={365} value={rotateAfterDays} onChange={(_, d) => setRotateAfterDays(d.value)} />
      </Field>
      <Button type="submit" disabled={save.isPending}>
        Save key policy
      </Button>
      <ErrorBar error={save.error} />
      {save.isSuccess ? <Notice>Key policy saved.</Notice> : null}
    </FormGrid>
  );
}
