import { Badge, Button, Field, Input, Select, Subtitle2 } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useClient } from "../app/api.js";
import { DataTable, ErrorBar, FormGrid, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";
import { LoadMore, usePaged } from "../app/paging.js";
import { ProjectSelect } from "../app/projects.js";
import { useSession } from "../app/session.js";

type ReviewItem = Awaited<ReturnType<ReturnType<typeof useClient>["reviews"]["items"]>>["items"][number];

const KINDS = ["keys", "roleAssignments", "keyShares", "toolApprovals", "exemptions"] as const;

/** Access review campaigns: start one, decide its items (recommendations from gateway usage), stop it. */
export default function Reviews() {
  const { reviewId } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  const { session } = useSession();
  const list = usePaged(["reviews"], (token) => client.reviews.list({ maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }));
  const review = useQuery({ queryKey: ["review", reviewId], queryFn: () => client.reviews.get(reviewId!), enabled: !!reviewId });
  const items = usePaged(["reviewItems", reviewId], (token) => client.reviews.items(reviewId!, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }), { enabled: !!reviewId });
  const [name, setName] = useState("");
  const [kind, setKind] = useState<(typeof KINDS)[number]>("keys");
  const [projectId, setProjectId] = useState("");
  const [days, setDays] = useState("14");
  const [justification, setJustification] = useState("");
  const create = useMutation({
    mutationFn: () =>
      client.reviews.create({
        name,
        kind,
        scope: projectId ? { level: "project", projectId } : { level: "tenant" },
        stages: [{ reviewers: { type: "projectOwners" }, durationDays: Number(days) }],
      }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["reviews"] }),
  });
  const decide = useMutation({
    // With the item's ETag: a decision made on what this page shows, never over another reviewer's made since (412).
    mutationFn: ({ itemId, decision, etag }: { itemId: string; decision: "approve" | "deny"; etag: string }) =>
      client.reviews.decide(reviewId!, itemId, { decision, ...(justification ? { justification } : {}) }, etag),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["reviewItems", reviewId] }),
  });
  // A completed campaign's removals, when it did not apply them itself (or to retry failed ones).
  const apply = useMutation({
    mutationFn: () => client.reviews.apply(reviewId!, review.data!.etag),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["review", reviewId] });
      void qc.invalidateQueries({ queryKey: ["reviewItems", reviewId] });
    },
  });
  // Who may decide an item, as the server checks it: one of the item's reviewers in the current stage, never
  // its holder, while the campaign's stage is open. Anyone else (an overseer reading the whole campaign) is
  // shown who reviews it instead of buttons the server would refuse (403).
  const stage = review.data?.stageStates[review.data.currentStage];
  const open = review.data?.status === "inProgress" && stage?.status === "inProgress";
  const mayDecide = (i: ReviewItem) => open && !!session && i.reviewers.includes(session.user) && i.target.holder !== session.user;
  const stop = useMutation({
    mutationFn: () => client.reviews.stop(reviewId!, { reason: "stopped from the portal" }, review.data!.etag),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["review", reviewId] }),
  });
  return (
    <>
      <PageHeader title="Access reviews" />
      <Section label="Start a review">
        <Subtitle2 as="h2">Start a review</Subtitle2>
        <FormGrid label="Start a review" onSubmit={() => create.mutate()}>
          <Field label="Name" required>
            <Input value={name} onChange={(_, d) => setName(d.value)} />
          </Field>
          <Field label="What is reviewed">
            <Select value={kind} onChange={(_, d) => setKind(d.value as (typeof KINDS)[number])}>
              {KINDS.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </Select>
          </Field>
          <ProjectSelect label="Project (empty: every project)" value={projectId} onChange={setProjectId} none="Whole tenant" />
          <Field label="Days">
            <Input type="number" min={1} max={90} value={days} onChange={(_, d) => setDays(d.value)} />
          </Field>
          <Button appearance="primary" type="submit" disabled={!name || create.isPending}>
            Start review
          </Button>
        </FormGrid>
        <ErrorBar error={create.error} />
      </Section>
      <Section label="Campaigns">
        <Subtitle2 as="h2">Campaigns</Subtitle2>
        {list.isPending ? <Loading label="Loading reviews" /> : null}
        <ErrorBar error={list.error} onRetry={() => void list.refetch()} />
        {list.data ? (
          <DataTable
            label="Access reviews"
            empty="No access review yet."
            rows={list.data.items}
            rowKey={(r) => r.id}
            columns={[
              { key: "name", label: "Name", render: (r) => <Link to={`/reviews/${r.id}`}>{r.name}</Link> },
              { key: "kind", label: "Kind" },
              { key: "status", label: "Status", render: (r) => <Badge appearance="tint">{r.status}</Badge> },
              { key: "createdAt", label: "Created", render: (r) => when(r.createdAt) },
            ]}
          />
        ) : null}
        <LoadMore list={list} label="Load more access reviews" />
      </Section>
      {reviewId ? (
        <Section label="Items">
          <Subtitle2 as="h2">{review.data?.name ?? "Review"}</Subtitle2>
          <ErrorBar error={review.error ?? items.error ?? decide.error ?? stop.error ?? apply.error} />
          <Field label="Justification for the next decision">
            <Input value={justification} onChange={(_, d) => setJustification(d.value)} />
          </Field>
          {items.isPending ? <Loading label="Loading items" /> : null}
          {items.data ? (
            <DataTable
              label="Items to review"
              empty="Nothing to review."
              rows={items.data.items}
              rowKey={(i) => i.id}
              columns={[
                { key: "target", label: "Access", render: (i) => i.target.label },
                { key: "holder", label: "Holder", render: (i) => i.target.holder ?? "" },
                { key: "lastActivityAt", label: "Last used", render: (i) => when(i.lastActivityAt) || "never seen" },
                { key: "recommendation", label: "Recommendation", render: (i) => `${i.recommendation}: ${i.recommendationReason}` },
                { key: "decision", label: "Decision", render: (i) => i.decisions.at(-1)?.decision ?? "" },
                { key: "outcome", label: "Outcome", render: (i) => [i.outcome ?? "", i.applied ? `${i.applied.result}${i.applied.detail ? `: ${i.applied.detail}` : ""}` : ""].filter(Boolean).join(", ") },
                {
                  key: "actions",
                  label: "",
                  render: (i) =>
                    mayDecide(i) ? (
                      <>
                        <Button size="small" onClick={() => decide.mutate({ itemId: i.id, decision: "approve", etag: i.etag })} aria-label={`Keep ${i.target.label}`}>
                          Keep
                        </Button>
                        <Button size="small" onClick={() => decide.mutate({ itemId: i.id, decision: "deny", etag: i.etag })} aria-label={`Remove ${i.target.label}`}>
                          Remove
                        </Button>
                      </>
                    ) : (
                      <span data-testid={`reviewers-${i.target.label}`}>{reviewedBy(i, session?.user)}</span>
                    ),
                },
              ]}
            />
          ) : null}
          <LoadMore list={items} label="Load more items" />
          {review.data && (review.data.status === "inProgress" || review.data.status === "scheduled") ? <Button onClick={() => stop.mutate()}>Stop the review</Button> : null}
          {review.data?.status === "completed" ? (
            <Button appearance="primary" disabled={apply.isPending} onClick={() => apply.mutate()}>
              Apply the removals
            </Button>
          ) : null}
          {apply.data ? <Notice>Applying the removals: each item shows its result.</Notice> : null}
        </Section>
      ) : null}
    </>
  );
}

/** Who reviews an item, for those who do not decide it (and, to its holder, that it is their own access). */
function reviewedBy(i: ReviewItem, user: string | undefined): string {
  const who = i.reviewers.length ? `reviewed by ${i.reviewers.join(", ")}` : "no reviewer in this stage";
  return i.target.holder !== undefined && i.target.holder === user ? `Your own access, ${who}` : who[0]!.toUpperCase() + who.slice(1);
}
