// The plain-text traceback, exactly as the app printed it, with a Copy button.
import { useEffect, useRef, useState } from "preact/hooks";
import { loadReportText } from "../state/sharing";

type Load = { state: "loading" } | { state: "done"; text: string } | { state: "failed"; error: string };

async function copyText(text: string, fallback: HTMLElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (insecure origin, permissions): select the text for Ctrl+C instead.
    if (fallback === null) return false;
    const range = document.createRange();
    range.selectNodeContents(fallback);
    const selection = window.getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    return false;
  }
}

/** GET /api/reports/{id}/text shown in a <pre>. */
function PlainText({ reportId }: { reportId: string }) {
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [copied, setCopied] = useState<string>("");
  const pre = useRef<HTMLPreElement>(null);

  useEffect(() => {
    let current = true;
    setLoad({ state: "loading" });
    loadReportText(reportId).then(
      (text) => current && setLoad({ state: "done", text }),
      (error: unknown) => current && setLoad({ state: "failed", error: error instanceof Error ? error.message : String(error) }),
    );
    return () => {
      current = false;
    };
  }, [reportId]);

  if (load.state === "loading") return <p class="muted">Loading the plain-text traceback…</p>;
  if (load.state === "failed") return <p class="error" role="alert">{load.error}</p>;
  return (
    <div class="plaintext">
      <div class="plaintext-bar">
        <button
          type="button"
          class="button small"
          onClick={async () => {
            const done = await copyText(load.text, pre.current);
            setCopied(done ? "Copied to the clipboard." : "Selected: press Ctrl+C to copy.");
          }}
        >
          Copy
        </button>
        <span class="muted small" role="status">
          {copied}
        </span>
      </div>
      <pre ref={pre} data-testid="plaintext" tabIndex={0}>
        {load.text}
      </pre>
    </div>
  );
}

export { PlainText };
