import { Badge, Button, Field, Select, Subtitle2, Textarea } from "@fluentui/react-components";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useClient } from "../app/api.js";
import { LoadMore, usePaged } from "../app/paging.js";
import { DataTable, ErrorBar, Loading, Notice, PageHeader, Section, when } from "../app/ui.js";

type Filter = "mine" | "pending" | "all";

/** The approvals inbox: requests awaiting the caller's decision (or all), each decided with a justification. */
export default function Approvals() {
  const { approvalId } = useParams();
  const client = useClient();
  const qc = useQueryClient();
  const [filter, setFilter] = useState<Filter>("mine");
  const query = filter === "mine" ? ({ approver: "me", status: "pending" } as const) : filter === "pending" ? ({ status: "pending" } as const) : {};
  const list = usePaged(["approvals", filter], (token) => client.approvals.list({ ...query, maxPageSize: 100, ...(token ? { continuationToken: token } : {}) }));
  const selected = useQuery({ queryKey: ["approval", approvalId], queryFn: () => client.approvals.get(approvalId!), enabled: !!approvalId });
  const [justification, setJustification] = useState("");
  const decide = useMutation({
    mutationFn: (decision: "approve" | "reject") => client.approvals.decide(approvalId!, { decision, justification }, selected.data!.etag),
    onSuccess: () => {
      setJustification("");
      void qc.invalidateQueries({ queryKey: ["approvals"] });
      void qc.invalidateQueries({ queryKey: ["approval", approvalId] });
    },
  });
  return (
    <>
      <PageHeader title="Approvals">
        <Field label="Show">
          <Select value={filter} onChange={(_, d) => setFilter(d.value as Filter)}>
            <option value="mine">Awaiting my decision</option>
            <option value="pending">All pending</option>
            <option value="all">All</option>
          </Select>
        </Field>
      </PageHeader>
      <Section label="Requests">
        {list.isPending ? <Loading label="Loading approvals" /> : null}
        <ErrorBar error={list.error} onRetry={() => void list.refetch()} />
        {list.data ? (
          <DataTable
            label="Approval requests"
            empty={filter === "mine" ? "Nothing awaits your decision." : "No request."}
            rows={list.data.items}
            rowKey={(a) => a.id}
            columns={[
              { key: "subject", label: "Subject", render: (a) => <Link to={`/approvals/${a.id}`}>{`${a.subject.resourceType} ${a.subject.resourceId}`}</Link> },
              { key: "status", label: "Status", render: (a) => <Badge appearance="tint">{a.status}</Badge> },
              { key: "requester", label: "Requester" },
              { key: "createdAt", label: "Requested", render: (a) => when(a.createdAt) },
            ]}
          />
        ) : null}
        <LoadMore list={list} label="Load more approval requests" />
      </Section>
      {approvalId ? (
        <Section label="Request">
          {selected.isPending ? <Loading label="Loading the request" /> : null}
          <ErrorBar error={selected.error} />
          {selected.data ? (
            <>
              <Subtitle2 as="h2">
                {selected.data.subject.resourceType} {selected.data.subject.resourceId}: <span data-testid="approval-status">{selected.data.status}</span>
              </Subtitle2>
              <p>
                Requested by {selected.data.requester}: {selected.data.justification}
              </p>
              <pre>{JSON.stringify(selected.data.subject.change ?? {}, null, 2)}</pre>
              {selected.data.decisions.length ? (
                <ul>
                  {selected.data.decisions.map((d, i) => (
                    <li key={i}>
                      {d.approver} {d.decision}: {d.justification}
                    </li>
                  ))}
                </ul>
              ) : null}
              {selected.data.status === "pending" ? (
                <form onSubmit={(e) => e.preventDefault()} aria-label="Decide">
                  <Field label="Justification" required>
                    <Textarea value={justification} onChange={(_, d) => setJustification(d.value)} />
                  </Field>
                  <Button appearance="primary" disabled={!justification || decide.isPending} onClick={() => decide.mutate("approve")}>
                    Approve
                  </Button>{" "}
                  <Button disabled={!justification || decide.isPending} onClick={() => decide.mutate("reject")}>
                    Reject
                  </Button>
                </form>
              ) : null}
              <ErrorBar error={decide.error} />
              {decide.data ? <Notice>Decision recorded: the request is {decide.data.status}.</Notice> : null}
            </>
          ) : null}
        </Section>
      ) : null}
    </>
  );
}
