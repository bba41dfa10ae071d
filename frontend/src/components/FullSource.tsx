// A frame's whole source file on demand: asked of the agent that holds the frame (the file as
// the process loaded it), else the lines the report captured. Highlighted tokens as classed
// text spans, never HTML; opened scrolled to the failing line.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { FrameInfo, FrameSource } from "../api/types";
import { loadFrameSource } from "../state/frames";
import { BreakpointForm, LineNumber } from "./Breakpoints";

const SHORT_CLASS = /^[a-z][a-z0-9]{0,5}$/i;

type Load =
  | { state: "closed" }
  | { state: "loading" }
  | { state: "done"; source: FrameSource; of: string }
  | { state: "failed"; error: string };

/** A control added to each line (stepping's "Run to this line"). */
type LineAction = ((lineno: number) => ComponentChildren) | undefined;

function SourceLines({
  source,
  file,
  where,
  lineAction,
}: {
  source: FrameSource;
  file: string;
  where: string;
  lineAction: LineAction;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const container = box.current;
    const current = container?.querySelector<HTMLElement>(".failing");
    if (container && current) container.scrollTop = current.offsetTop - container.clientHeight / 2;
  }, [source]);
  return (
    <div class="full-source" ref={box} data-testid="full-source" tabIndex={0}>
      <pre class="source">
        {source.lines.map((line, position) => {
          const number = source.first_line + position;
          const tokens = source.highlight[position] ?? [["", line]];
          return (
            <span key={number} class={number === source.lineno ? "line failing" : "line"} data-line={number}>
              <LineNumber file={file} line={number} where={where} />
              {lineAction?.(number)}
              {tokens.map(([cls, text], index) => (
                <span key={index} class={SHORT_CLASS.test(cls) ? cls : undefined}>
                  {text}
                </span>
              ))}
            </span>
          );
        })}
      </pre>
    </div>
  );
}

/** "Whole file": loads the frame's source once, then toggles it; open, it follows the report
 * (a step's next stop in the same frame loads it again, scrolled to the new line). */
function FullSource({ reportId, frame, lineAction }: { reportId: string; frame: FrameInfo; lineAction?: LineAction }) {
  const [load, setLoad] = useState<Load>({ state: "closed" });
  const [open, setOpen] = useState(false);
  const of = `${reportId}/${frame.index}`;
  const fetchSource = async () => {
    setLoad({ state: "loading" });
    try {
      setLoad({ state: "done", source: await loadFrameSource(reportId, frame.index), of });
    } catch (failure) {
      setLoad({ state: "failed", error: failure instanceof Error ? failure.message : String(failure) });
    }
  };
  useEffect(() => {
    if (open && load.state === "done" && load.of !== of) void fetchSource();
  }, [of]);
  const toggle = async () => {
    if (open) {
      setOpen(false);
      return;
    }
    setOpen(true);
    if (load.state === "done" && load.of === of) return;
    await fetchSource();
  };
  return (
    <div class="full-source-block">
      <button type="button" class="button small" data-testid="full-source-toggle" aria-expanded={open} onClick={() => void toggle()}>
        {open ? "Hide the whole file" : "Whole file"}
      </button>
      {open && load.state === "loading" && <p class="muted small">Loading the source…</p>}
      {open && load.state === "failed" && (
        <p class="error small" role="alert">
          {load.error}
        </p>
      )}
      {open && load.state === "done" && (
        <>
          {load.source.origin === "report" && (
            <p class="muted small" data-testid="full-source-note">
              Only the lines the report captured: {load.source.note}
            </p>
          )}
          {load.source.truncated && <p class="muted small">The file is longer than the agent sends.</p>}
          <SourceLines source={load.source} file={frame.filename} where={`file-${frame.index}`} lineAction={lineAction} />
          <BreakpointForm where={`file-${frame.index}`} />
        </>
      )}
    </div>
  );
}

export { FullSource };
