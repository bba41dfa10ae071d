// The report list (#/): newest first, live from the WebSocket, next to the agents panel.
import { useEffect } from "preact/hooks";
import type { ReportSummary } from "../api/types";
import { AgentsPanel } from "../components/AgentsPanel";
import { RelativeTime } from "../components/RelativeTime";
import {
  freshIds,
  hasOlder,
  loadOlderReports,
  markSeen,
  reports,
  reportsError,
  reportsLoaded,
} from "../state/reports";
import { reportHref } from "../state/route";

const MESSAGE_LIMIT = 160;

function truncate(text: string, limit: number): string {
  const firstLine = text.split("\n", 1)[0] ?? "";
  return firstLine.length > limit || firstLine !== text ? `${firstLine.slice(0, limit).trimEnd()}…` : text;
}

function ReportRow({ report, fresh }: { report: ReportSummary; fresh: boolean }) {
  return (
    <li class={fresh ? "report-row fresh" : "report-row"} data-testid="report-row" data-id={report.id}>
      <a href={reportHref(report.id)}>
        <span class="report-headline">
          <span class="exception-type">{report.type_name}</span>
          {report.message && <span class="report-message">{truncate(report.message, MESSAGE_LIMIT)}</span>}
        </span>
        <span class="report-meta">
          <span>{report.app || "(unnamed app)"}</span>
          <span>pid {String(report.pid)}</span>
          <span>{report.host}</span>
          {report.url && <span class="report-url">{report.url}</span>}
        </span>
        <span class="report-time">
          <RelativeTime at={report.created} />
        </span>
      </a>
    </li>
  );
}

/** Clears the title's "new reports" count when the list comes on screen. */
function useSeenWhileVisible(): void {
  useEffect(() => {
    const update = () => {
      if (document.visibilityState === "visible") markSeen();
    };
    update();
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
}

/** The list page. */
function ReportList() {
  useSeenWhileVisible();
  const list = reports.value;
  const fresh = freshIds.value;
  return (
    <div class="list-layout">
      <section class="panel reports" aria-labelledby="reports-title">
        <h1 id="reports-title">
          Reports <span class="count">{String(list.length)}</span>
        </h1>
        {reportsError.value !== null && (
          <p class="error" role="alert">
            {reportsError.value}
          </p>
        )}
        {!reportsLoaded.value ? (
          <p class="muted">Loading…</p>
        ) : list.length === 0 ? (
          <p class="muted">No errors yet. When an app with the agent raises, its report appears here at once.</p>
        ) : (
          <ol class="report-list">
            {list.map((report) => (
              <ReportRow key={report.id} report={report} fresh={fresh.has(report.id)} />
            ))}
          </ol>
        )}
        {hasOlder.value && (
          <button type="button" class="button load-older" onClick={() => void loadOlderReports()}>
            Load older reports
          </button>
        )}
      </section>
      <AgentsPanel />
    </div>
  );
}

export { ReportList };
