// Report actions for sharing outside the dashboard: a Markdown export for issue trackers and a
// read-only share link served by the broker itself (nothing leaves the machine); and, for a
// full session, deleting the report (after a confirmation).
import { useState } from "preact/hooks";
import { triageDialog } from "../state/groups";
import { canTriage } from "../state/session";
import { createReadOnlyLink, loadReportMarkdown } from "../state/sharing";

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** "Copy Markdown" and "Share link" buttons, with what they did. */
function ReportActions({ reportId }: { reportId: string }) {
  const [status, setStatus] = useState("");
  const [shareUrl, setShareUrl] = useState<string | null>(null);
  const [markdown, setMarkdown] = useState<string | null>(null);

  const exportMarkdown = async () => {
    try {
      const text = await loadReportMarkdown(reportId);
      setMarkdown(text);
      setStatus((await copy(text)) ? "Markdown copied to the clipboard." : "Markdown below: select it and copy.");
    } catch (failure) {
      setStatus(failure instanceof Error ? failure.message : String(failure));
    }
  };
  const share = async () => {
    try {
      const url = await createReadOnlyLink(reportId);
      setShareUrl(url);
      setStatus((await copy(url)) ? "Read-only link copied to the clipboard." : "Read-only link below.");
    } catch (failure) {
      setStatus(failure instanceof Error ? failure.message : String(failure));
    }
  };
  return (
    <div class="report-actions">
      <button type="button" class="button" data-testid="export-markdown" onClick={() => void exportMarkdown()}>
        Export Markdown
      </button>
      <button type="button" class="button" data-testid="share-link" onClick={() => void share()}>
        Share link
      </button>
      {canTriage.value && (
        <button
          type="button"
          class="button danger"
          aria-haspopup="dialog"
          data-testid="delete-report"
          onClick={() => {
            triageDialog.value = { kind: "delete-report", id: reportId };
          }}
        >
          Delete report…
        </button>
      )}
      <span class="muted small" role="status">
        {status}
      </span>
      {shareUrl && (
        <p class="small">
          <a href={shareUrl} data-testid="share-url" target="_blank" rel="noopener noreferrer">
            {shareUrl}
          </a>{" "}
          <span class="muted">(read-only, no login, no consoles)</span>
        </p>
      )}
      {markdown !== null && (
        <textarea class="markdown-export" data-testid="markdown-text" readOnly rows={8} value={markdown} />
      )}
    </div>
  );
}

export { ReportActions };
