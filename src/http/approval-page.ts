import type { Approval } from "../domain/approvals/schema.js";
import { escapeHtml as e, page } from "./html.js";

/** The page an approver link opens: the frozen subject, the change, the justification, and the form. */
export function reviewPage(approval: Approval, approver: string, stage: number, token: string): string {
  const s = approval.subject;
  return page(
    `Approval ${approval.id}`,
    `<h1>Approval requested</h1>
<p><strong>${e(approval.requester)}</strong> asks you, <strong>${e(approver)}</strong>, to decide stage ${stage + 1} of ${approval.stages.length}.</p>
<dl>
<dt>Subject</dt><dd>${e(s.resourceType)} <code>${e(s.resourceId)}</code>${s.projectId ? ` in project <code>${e(s.projectId)}</code>` : ""}</dd>
<dt>Justification</dt><dd>${e(approval.justification)}</dd>
<dt>Change requested</dt><dd><pre>${e(JSON.stringify(s.change, null, 2))}</pre></dd>
<dt>Digest</dt><dd><code>${e(s.digest)}</code></dd>
<dt>Requested</dt><dd>${e(approval.createdAt)}</dd>
</dl>
<form method="post" action="review">
<input type="hidden" name="token" value="${e(token)}">
<label for="justification">Your justification (required)</label>
<textarea id="justification" name="justification" required maxlength="4000"></textarea>
<p><button type="submit" name="decision" value="approve">Approve</button><button type="submit" name="decision" value="reject">Reject</button></p>
</form>`,
  );
}

export function decidedPage(approval: Approval, decision: string): string {
  return page(
    `Decision recorded`,
    `<h1>Decision recorded</h1><p>You chose <strong>${e(decision)}</strong> for ${e(approval.subject.resourceType)} <code>${e(approval.subject.resourceId)}</code>.</p>
<p>The request is now <strong id="status">${e(approval.status)}</strong>. This link cannot be used again.</p>`,
  );
}
