// One traceback frame: where it is, its source and locals, and a console that runs code in it.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { FrameInfo } from "../api/types";
import { frameConsolePath, isConsoleOpen, setConsoleOpen } from "../state/consoles";
import { reportHref } from "../state/route";
import { currentStop } from "../state/stepping";
import { Console } from "./Console";
import { EditorLink } from "./EditorLink";
import { ExpandProvider } from "./Expandable";
import { FullSource } from "./FullSource";
import { LocalsTable } from "./LocalsTable";
import { revealLater } from "./reveal";
import { SourceView } from "./SourceView";
import { runToLine } from "./SteppingBar";

interface FrameProps {
  frame: FrameInfo;
  reportId: string;
  /** Why no console can run in this report (process gone…), or null. */
  unavailable: string | null;
  /** The route points at this frame: show it expanded. */
  targeted: boolean;
  /** Render the body (source, locals) at once; otherwise when near the viewport or idle. */
  eager: boolean;
}

/** A rough height for a body not rendered yet (source and locals side by side), so that the
 * page hardly moves when it is. */
/** What a frame's console is "in": the function and its file's name, e.g. `checkout (shop/views.py:42)`. */
function consoleLabel(frame: FrameInfo): string {
  const parts = frame.filename.split(/[\\/]/);
  const file = parts.slice(-2).join("/");
  return `${frame.function} (${file}:${String(frame.lineno)})`;
}

function estimatedHeight(frame: FrameInfo): string {
  const source = Math.max(frame.context.length, 1) * 1.25 + 4;
  const locals = frame.is_library ? 2 : Math.min(frame.locals.length, 40) * 2.2 + 3;
  return `${Math.max(source, locals).toFixed(1)}em`;
}

/** A frame of the traceback; library frames start collapsed. */
function FrameView({ frame, reportId, unavailable, targeted, eager }: FrameProps) {
  const [expanded, setExpanded] = useState(!frame.is_library || targeted);
  const [rendered, setRendered] = useState(eager || targeted);
  const consoleOpen = isConsoleOpen(reportId, frame.index);
  const pending = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (targeted) setExpanded(true);
  }, [targeted]);
  const renderNow = eager || targeted;
  useLayoutEffect(() => {
    if (rendered || !expanded) return undefined;
    if (renderNow) {
      setRendered(true);
      return undefined;
    }
    const element = pending.current;
    return element === null ? undefined : revealLater(element, () => setRendered(true));
  }, [rendered, expanded, renderNow]);

  const stop = currentStop.value;
  // The frame a paused thread stands in: each line offers "Run to this line".
  const lineAction = stop !== null && stop.reportId === reportId && stop.frame.index === frame.index ? runToLine : undefined;
  const bodyId = `frame-body-${frame.index}`;
  const why =
    unavailable ?? (frame.frame_id === null ? "The agent did not keep this frame, so it has no console." : null);
  const classes = ["frame"];
  if (frame.is_library) classes.push("library");
  if (frame.hidden) classes.push("hidden-frame");
  if (targeted) classes.push("targeted");

  return (
    <li class={classes.join(" ")} data-testid="frame" data-index={frame.index} id={`frame-${frame.index}`} tabIndex={-1}>
      <div class="frame-head">
        <button
          type="button"
          class="frame-expand"
          aria-expanded={expanded}
          aria-controls={bodyId}
          onClick={() => {
            if (!expanded) setRendered(true); // opened by hand: the body now, not a frame later
            setExpanded(!expanded);
          }}
        >
          <span class="chevron" aria-hidden="true" />
          <span class="frame-function">{frame.function}</span>
          <span class="visually-hidden"> in </span>
          <span class="frame-location">
            {frame.filename}:{String(frame.lineno)}
          </span>
        </button>
        {frame.is_library && <span class="tag">library</span>}
        {frame.hidden && <span class="tag">hidden</span>}
        <a class="frame-link" href={reportHref(reportId, frame.index)} title="Link to this frame">
          <span aria-hidden="true">#</span>
          <span class="visually-hidden">Link to frame {String(frame.index)}</span>
        </a>
        <EditorLink filename={frame.filename} line={frame.lineno} column={frame.colno ?? null} />
        <button
          type="button"
          class="button small console-toggle"
          data-testid="console-toggle"
          aria-expanded={consoleOpen}
          onClick={() => setConsoleOpen(reportId, frame.index, !consoleOpen)}
        >
          {consoleOpen ? "Close console" : "Console"}
        </button>
      </div>
      {expanded && !rendered && (
        <div class="frame-body" id={bodyId} ref={pending} data-pending="" style={{ minHeight: estimatedHeight(frame) }} />
      )}
      {expanded && rendered && (
        <div class="frame-body" id={bodyId}>
          <div class="frame-code">
            <SourceView frame={frame} lineAction={lineAction} />
            <FullSource reportId={reportId} frame={frame} lineAction={lineAction} />
          </div>
          {frame.locals.length > 0 ? (
            <details class="frame-locals" open={!frame.is_library}>
              <summary>Locals ({String(frame.locals.length)})</summary>
              <ExpandProvider reportId={reportId} frameIndex={frame.index}>
                <LocalsTable variables={frame.locals} />
              </ExpandProvider>
            </details>
          ) : (
            <p class="muted small frame-locals">No locals captured.</p>
          )}
        </div>
      )}
      {consoleOpen && (
        <Console
          path={frameConsolePath(reportId, frame.index)}
          label={consoleLabel(frame)}
          unavailable={why}
          expandIn={{ reportId, frameIndex: frame.index }}
        />
      )}
    </li>
  );
}

export { FrameView };
