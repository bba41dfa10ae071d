// A report outside the dashboard: its plain-text traceback, a Markdown export for issue
// trackers, and read-only share links served by the broker itself.
import { createShareLink, fetchReportMarkdown, fetchReportText } from "../api/client";

/** The plain-text traceback, as the app printed it. */
function loadReportText(reportId: string): Promise<string> {
  return fetchReportText(reportId);
}

/** The report as Markdown, for an issue tracker. */
function loadReportMarkdown(reportId: string): Promise<string> {
  return fetchReportMarkdown(reportId);
}

/** A new read-only link to the report that needs no login, as a full URL on this broker. */
async function createReadOnlyLink(reportId: string): Promise<string> {
  const link = await createShareLink(reportId);
  return new URL(link.path, window.location.origin).toString();
}

export { createReadOnlyLink, loadReportMarkdown, loadReportText };
