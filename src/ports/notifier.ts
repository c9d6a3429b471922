/**
 * Delivers a message to one person's own channel (email, Teams, … in Azure; a per-user file locally).
 * Messages may carry approver links, so they go nowhere else: not to events, logs or the audit log.
 * A delivery that did not happen throws: callers record or report it (approvals audit it as
 * `approval.notify.failed`), never count it as delivered.
 */
export interface Notifier {
  deliver(recipient: string, message: { subject: string; body: string; link?: string }): Promise<void>;
}

/** No channel reaches people in this deployment: nothing was delivered, and nothing will be on a retry. */
export class NoNotificationChannel extends Error {
  readonly code = "no_notification_channel";
  constructor() {
    super("no notification channel is configured");
    this.name = "NoNotificationChannel";
  }
}

/** By its code, not its class: a notifier may come from another copy of this module (a test's override). */
export const isNoNotificationChannel = (err: unknown): boolean => (err as { code?: unknown } | undefined)?.code === "no_notification_channel";
