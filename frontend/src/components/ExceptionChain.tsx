// The exception chain in CPython's print order (root cause first), with the chain wording
// between entries, and exception groups' sub-exceptions nested and indented.
import type { ChainLink, ExceptionInfo } from "../api/types";
import { FrameView } from "./FrameView";

const CHAIN_WORDING: Record<ChainLink, string> = {
  cause: "The above exception was the direct cause of the following exception:",
  context: "During handling of the above exception, another exception occurred:",
};

const UNQUALIFIED_MODULES = new Set(["builtins", "__main__", "", "?"]);

/** What every exception block of one report shares. */
interface ChainContext {
  reportId: string;
  /** Why consoles cannot run (process gone…), or null. */
  unavailable: string | null;
  showHidden: boolean;
  /** The frame index the route points at, or null. */
  targetFrame: number | null;
  /** Frames with a lower index (print order) render their bodies at once, the rest later. */
  eagerBelow: number;
}

interface ChainProps {
  exceptions: ExceptionInfo[];
  context: ChainContext;
  depth: number;
}

/** Split a group's members into sub-exceptions: each run starts at an entry without chain. */
function subExceptions(members: ExceptionInfo[]): ExceptionInfo[][] {
  const runs: ExceptionInfo[][] = [];
  for (const member of members) {
    const last = runs[runs.length - 1];
    if (member.chain === null || last === undefined) runs.push([member]);
    else last.push(member);
  }
  return runs;
}

function ExceptionBlock({ info, context, depth }: { info: ExceptionInfo; context: ChainContext; depth: number }) {
  const frames = info.frames.filter(
    (frame) => context.showHidden || !frame.hidden || frame.index === context.targetFrame,
  );
  const hiddenCount = info.frames.length - frames.length;
  const qualifier = UNQUALIFIED_MODULES.has(info.module) ? "" : `${info.module}.`;
  const Heading = depth === 0 ? "h2" : "h3";
  const runs = subExceptions(info.exceptions);
  return (
    <section class="exception">
      <Heading class="exception-title">
        {qualifier && <span class="exception-module">{qualifier}</span>}
        <span class="exception-type">{info.type_name}</span>
        {info.message && <span class="exception-message">: {info.message}</span>}
      </Heading>
      {info.notes.length > 0 && (
        <ul class="notes" aria-label="Notes">
          {info.notes.map((note, position) => (
            <li key={position} class="note">
              {note}
            </li>
          ))}
        </ul>
      )}
      {frames.length > 0 && (
        <>
          <p class="traceback-head">Traceback (most recent call last):</p>
          <ol class="frames">
            {frames.map((frame) => (
              <FrameView
                key={frame.index}
                frame={frame}
                reportId={context.reportId}
                unavailable={context.unavailable}
                targeted={frame.index === context.targetFrame}
                eager={frame.index < context.eagerBelow}
              />
            ))}
          </ol>
        </>
      )}
      {hiddenCount > 0 && (
        <p class="muted small">
          {hiddenCount === 1 ? "1 hidden frame not shown." : `${hiddenCount} hidden frames not shown.`}
        </p>
      )}
      {runs.length > 0 && (
        <ol class="group" aria-label={`${runs.length} sub-exceptions of ${info.type_name}`}>
          {runs.map((run, position) => (
            <li key={position} class="group-member">
              <p class="group-label">
                Sub-exception {String(position + 1)} of {String(runs.length)}
              </p>
              <ExceptionChain exceptions={run} context={context} depth={depth + 1} />
            </li>
          ))}
        </ol>
      )}
      {info.omitted > 0 && (
        <p class="muted small" data-testid="omitted-members">
          {runs.length === 0
            ? `Exception group nested too deep: its ${String(info.omitted)} sub-exceptions are not shown (as CPython's max_group_depth).`
            : `and ${String(info.omitted)} more sub-exception${info.omitted === 1 ? "" : "s"} (as CPython, 15 are shown).`}
        </p>
      )}
    </section>
  );
}

/** A chain of exceptions, each followed by the wording that links it to the next. */
function ExceptionChain({ exceptions, context, depth }: ChainProps) {
  return (
    <div class="chain">
      {exceptions.map((info, position) => (
        <div key={position} class="chain-entry">
          {position > 0 && info.chain !== null && (
            <p class="chain-link">
              {CHAIN_WORDING[info.chain] ?? ""}
            </p>
          )}
          <ExceptionBlock info={info} context={context} depth={depth} />
        </div>
      ))}
    </div>
  );
}

export { ExceptionChain, type ChainContext };
