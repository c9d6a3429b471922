/**
 * Delivers a message to one person's own channel (email, Teams, … in Azure; a per-user file locally).
 * Messages may carry approver links, so they go nowhere else: not to events, logs or the audit log.
 */
export interface Notifier {
  deliver(recipient: string, message: { subject: string; body: string; link?: string }): Promise<void>;
}
