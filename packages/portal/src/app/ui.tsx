import {
  Button,
  Caption1,
  MessageBar,
  MessageBarBody,
  MessageBarTitle,
  Spinner,
  Table,
  TableBody,
  TableCell,
  TableHeader,
  TableHeaderCell,
  TableRow,
  Title2,
  makeStyles,
  tokens,
} from "@fluentui/react-components";
import type { ReactNode } from "react";
import { describeError } from "./problem-text.js";

const useStyles = makeStyles({
  header: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalM, marginBottom: tokens.spacingVerticalL, flexWrap: "wrap" },
  grow: { flexGrow: 1 },
  section: { display: "flex", flexDirection: "column", gap: tokens.spacingVerticalM, marginBottom: tokens.spacingVerticalXL },
  form: { display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(220px, 1fr))", gap: tokens.spacingHorizontalM, alignItems: "end" },
  empty: { padding: tokens.spacingVerticalL, color: tokens.colorNeutralForeground3 },
});

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  const s = useStyles();
  return (
    <div className={s.header}>
      <Title2 as="h1" className={s.grow}>
        {title}
      </Title2>
      {children}
    </div>
  );
}

export function Section({ children, label }: { children: ReactNode; label?: string }) {
  return (
    <section className={useStyles().section} aria-label={label}>
      {children}
    </section>
  );
}

export function FormGrid({ children, onSubmit, label }: { children: ReactNode; onSubmit: () => void; label: string }) {
  return (
    <form
      className={useStyles().form}
      aria-label={label}
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit();
      }}
    >
      {children}
    </form>
  );
}

export const Loading = ({ label = "Loading" }: { label?: string }) => <Spinner label={label} size="small" />;

export const Empty = ({ children }: { children: ReactNode }) => (
  <Caption1 as="p" className={useStyles().empty} role="status">
    {children}
  </Caption1>
);

/** A refusal or failure in words: the problem's title, detail, reason meaning and each field error. */
export function ErrorBar({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const p = describeError(error);
  return (
    <MessageBar intent="error" role="alert" layout="multiline">
      <MessageBarBody>
        <MessageBarTitle>{p.title}</MessageBarTitle>
        {p.detail ? <div>{p.detail}</div> : null}
        {p.reason ? (
          <div data-reason={p.reason}>
            {p.meaning ?? p.reason} <Caption1>({p.reason})</Caption1>
          </div>
        ) : null}
        {p.fields.length ? (
          <ul>
            {p.fields.map((f) => (
              <li key={f.field}>
                <code>{f.field}</code>: {f.message}
              </li>
            ))}
          </ul>
        ) : null}
        {onRetry ? <Button onClick={onRetry}>Retry</Button> : null}
      </MessageBarBody>
    </MessageBar>
  );
}

export function Notice({ children, intent = "success" }: { children: ReactNode; intent?: "success" | "info" | "warning" }) {
  return (
    <MessageBar intent={intent} role="status">
      <MessageBarBody>{children}</MessageBarBody>
    </MessageBar>
  );
}

export interface Column<T> {
  key: string;
  label: string;
  render?: (row: T) => ReactNode;
}

/** A plain accessible table; `empty` when there are no rows. */
export function DataTable<T extends object>({ rows, columns, label, empty, rowKey }: { rows: T[]; columns: Column<T>[]; label: string; empty: string; rowKey: (row: T) => string }) {
  if (rows.length === 0) return <Empty>{empty}</Empty>;
  return (
    <Table aria-label={label} size="small">
      <TableHeader>
        <TableRow>
          {columns.map((c) => (
            <TableHeaderCell key={c.key}>{c.label}</TableHeaderCell>
          ))}
        </TableRow>
      </TableHeader>
      <TableBody>
        {rows.map((row) => (
          <TableRow key={rowKey(row)}>
            {columns.map((c) => (
              <TableCell key={c.key}>{c.render ? c.render(row) : String((row as Record<string, unknown>)[c.key] ?? "")}</TableCell>
            ))}
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

export const when = (iso: string | undefined) => (iso ? new Date(iso).toLocaleString() : "");
