// One report (#/reports/{id}, optionally /frames/{index}): the header, the exception chain
// with frames and consoles, or the plain-text traceback.
import { Component } from "preact";
import { useEffect, useLayoutEffect, useState } from "preact/hooks";
import type { ExceptionInfo, Report } from "../api/types";
import { EditorSettingsPanel } from "../components/EditorSettings";
import { ExceptionChain, type ChainContext } from "../components/ExceptionChain";
import { PlainText } from "../components/PlainText";
import { RelativeTime } from "../components/RelativeTime";
import { ReportActions } from "../components/ReportActions";
import { ReportPanels } from "../components/ReportPanels";
import { RequestPanel } from "../components/RequestPanel";
import { SteppingBar } from "../components/SteppingBar";
import { releaseHeldFrames } from "../state/frames";
import { agents, selectReport, selected } from "../state/reports";
import { route } from "../state/route";

const TITLE_LIMIT = 300;
/** How many frames render their source and locals with the page (about a screenful). */
const EAGER_FRAMES = 2;
const PROCESS_GONE = "process gone: consoles unavailable";

function countHidden(exceptions: ExceptionInfo[]): number {
  let count = 0;
  for (const info of exceptions) {
    count += info.frames.filter((frame) => frame.hidden).length + countHidden(info.exceptions);
  }
  return count;
}

function shownIndices(exceptions: ExceptionInfo[], showHidden: boolean, into: number[]): number[] {
  for (const info of exceptions) {
    for (const frame of info.frames) if (showHidden || !frame.hidden) into.push(frame.index);
    shownIndices(info.exceptions, showHidden, into);
  }
  return into;
}

/** Frames below this index render at once: the first screenful, and all up to a linked frame
 * (so that the page does not move under it when the frames above render). */
function eagerBelow(exceptions: ExceptionInfo[], showHidden: boolean, target: number | null): number {
  const indices = shownIndices(exceptions, showHidden, []).sort((a, b) => a - b);
  const first = (indices[Math.min(EAGER_FRAMES, indices.length) - 1] ?? -1) + 1;
  return Math.max(first, target === null ? 0 : target + 1);
}

function consoleUnavailable(report: Report): string | null {
  if (!report.agent_alive) return "The process that raised this error is gone: consoles unavailable.";
  const agent = agents.value.find((item) => item.agent_id === report.agent_id);
  if (agent !== undefined && !agent.evalex) return "This app disabled evaluation (evalex=False): consoles unavailable.";
  return null;
}

function ReportHeader({ report }: { report: Report }) {
  const title = `${report.type_name}${report.message ? `: ${report.message}` : ""}`;
  return (
    <header class="report-header">
      <p class="breadcrumb">
        <a href="#/">← All reports</a>
      </p>
      <h1 data-testid="report-title" class="report-title">
        {title.length > TITLE_LIMIT ? `${title.slice(0, TITLE_LIMIT)}…` : title}
      </h1>
      <dl class="facts">
        <div>
          <dt>App</dt>
          <dd>{report.app || "(unnamed)"}</dd>
        </div>
        <div>
          <dt>PID</dt>
          <dd>{String(report.pid)}</dd>
        </div>
        <div>
          <dt>Host</dt>
          <dd>{report.host}</dd>
        </div>
        <div>
          <dt>Time</dt>
          <dd>
            <RelativeTime at={report.created} />
          </dd>
        </div>
        {report.request && (
          <div>
            <dt>Request</dt>
            <dd>
              {report.request.method} {report.request.url}
            </dd>
          </div>
        )}
      </dl>
      <p class={report.agent_alive ? "agent-state alive" : "agent-state gone"} data-testid="agent-state">
        <span class="dot" aria-hidden="true" />
        {report.agent_alive ? "Agent alive: consoles available" : PROCESS_GONE}
      </p>
      <ReportPanels panels={report.panels ?? []} />
      {report.request && <RequestPanel request={report.request} />}
    </header>
  );
}

/** The plain text printed fewer frames than the report holds: the app set sys.tracebacklimit. */
function TracebackLimitNote({ report }: { report: Report }) {
  const limit = report.tracebacklimit;
  if (typeof limit !== "number") return null;
  const kept = limit === 0 ? "no frames" : limit === 1 ? "the outermost frame" : `the outermost ${String(limit)} frames`;
  return (
    <p class="agent-state" data-testid="tracebacklimit-note" role="note">
      The app set <code>sys.tracebacklimit = {String(limit)}</code>: the plain-text traceback, as Python prints it,
      shows only {kept} of each traceback. The frames below are not limited by it: the failing frame is among them.
    </p>
  );
}

/** Whether the report's live frames are still held (and since when, in which pid): Release. */
function FramesBar({ report }: { report: Report }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!report.agent_alive || report.frames_held === undefined) return null;
  const release = async () => {
    setBusy(true);
    setError(null);
    try {
      await releaseHeldFrames(report.id);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <p class="agent-state" data-testid="frames-state" role="status">
      {report.frames_held ? (
        <>
          <span>
            Frames held since <RelativeTime at={report.created} /> in pid {String(report.pid)}.
          </span>
          <button type="button" class="button" data-testid="release-frames" disabled={busy} onClick={() => void release()}>
            Release frames
          </button>
        </>
      ) : (
        <span>
          Frames released
          {typeof report.frames_released === "number" && (
            <>
              {" "}
              <RelativeTime at={report.frames_released} />
            </>
          )}
          : consoles on this report cannot run code.
        </span>
      )}
      {error && <span class="error"> {error}</span>}
    </p>
  );
}

interface StableChainProps {
  exceptions: ExceptionInfo[];
  context: ChainContext;
}

/** The exception chain, diffed again only when the report or the chain's context changed: the
 * report list, agents and title re-render the page around it often, and 30 frames cost. */
class StableChain extends Component<StableChainProps> {
  override shouldComponentUpdate(next: StableChainProps): boolean {
    const before = this.props.context;
    const after = next.context;
    if (next.exceptions !== this.props.exceptions) return true;
    return (Object.keys(after) as (keyof ChainContext)[]).some((key) => before[key] !== after[key]);
  }

  override render() {
    return <ExceptionChain exceptions={this.props.exceptions} context={this.props.context} depth={0} />;
  }
}

/** The report page. */
function ReportView({ id, frame }: { id: string; frame: number | null }) {
  const [showHidden, setShowHidden] = useState(false);
  const [plain, setPlain] = useState(false);
  const selection = selected.value?.id === id ? selected.value : null;
  const report = selection?.report ?? null;

  // Before the first paint: the request starts as early as the page can send it.
  useLayoutEffect(() => {
    void selectReport(id);
  }, [id]);

  useEffect(() => {
    if (frame === null || report === null || plain) return;
    const element = document.getElementById(`frame-${frame}`);
    if (element === null) return;
    element.scrollIntoView({ block: "start" });
    // Not when the focus is already inside it (its console, opened by the "c" key), nor on
    // the stepping buttons (a step moves the page to the next stop: they stay the keyboard's).
    const active = document.activeElement;
    if (element.contains(active) || active?.closest("[data-testid=pause-bar]")) return;
    element.focus({ preventScroll: true });
  }, [frame, report?.id, plain]);

  if (report === null) {
    return (
      <section class="panel">
        <p class="breadcrumb">
          <a href="#/">← All reports</a>
        </p>
        {selection?.error ? (
          <p class="error" role="alert">
            {selection.error}
          </p>
        ) : (
          <p class="muted">Loading report…</p>
        )}
      </section>
    );
  }

  const hidden = countHidden(report.exceptions);
  const context: ChainContext = {
    reportId: report.id,
    unavailable: consoleUnavailable(report),
    showHidden,
    targetFrame: frame,
    eagerBelow: eagerBelow(report.exceptions, showHidden, frame),
  };
  return (
    <article class="report">
      <ReportHeader report={report} />
      <SteppingBar report={report} />
      <FramesBar report={report} />
      <TracebackLimitNote report={report} />
      {selection?.error && (
        <p class="error" role="alert">
          {selection.error}
        </p>
      )}
      <div class="toolbar">
        <label class="switch">
          <input type="checkbox" checked={showHidden} onChange={(event) => setShowHidden(event.currentTarget.checked)} />
          Show hidden frames ({String(hidden)})
        </label>
        <button
          type="button"
          class="button"
          data-testid="plaintext-toggle"
          aria-pressed={plain}
          onClick={() => setPlain(!plain)}
        >
          Plain text
        </button>
        <ReportActions reportId={report.id} />
        <EditorSettingsPanel />
      </div>
      {plain ? (
        <PlainText reportId={report.id} />
      ) : (
        <StableChain exceptions={report.exceptions} context={context} />
      )}
    </article>
  );
}

/** Request the report the address points at now, before the app's first render (main.tsx):
 * its JSON is on the way while the page renders. */
function prefetchRoutedReport(): void {
  const current = route.peek();
  if (current.name === "report") void selectReport(current.id);
}

export { ReportView, prefetchRoutedReport };
