import { NoNotificationChannel, type Notifier } from "../../ports/notifier.js";

/**
 * The notifier of a deployment with no channel to people (Azure has no mail or Teams adapter yet):
 * every delivery fails as undelivered, so approvals record `approval.notify.failed` and announce
 * `aigov.approval.notification.failed.v1` instead of reporting links as sent. Approvers decide through
 * the API, the portal or the CLI.
 */
export class NoChannelNotifier implements Notifier {
  deliver(): Promise<void> {
    return Promise.reject(new NoNotificationChannel());
  }
}
