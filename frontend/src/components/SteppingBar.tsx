// For a paused report (breakpoint(), or the stop a step led to): where the thread stands, who
// took the step that led here, and the buttons and keys that move it: Step over (F10), Step
// into (F11), Step out (Shift+F11), Continue (F8); "Run to this line" is a per-line button of
// the current frame's source (RunToLine). Every tab showing the stop follows the next one
// (state/stepping.ts), so everyone sees the same position.
import { useEffect } from "preact/hooks";
import type { Report, StepAction } from "../api/types";
import { reportHref } from "../state/route";
import { currentStop, stepError, stepInFlight, stopFrame, takeStep } from "../state/stepping";

interface Button {
  action: StepAction;
  label: string;
  /** KeyboardEvent.key, with Shift or not. */
  key: string;
  shift: boolean;
  /** As aria-keyshortcuts and the tooltip write it. */
  keys: string;
}

const BUTTONS: Button[] = [
  { action: "over", label: "Step over", key: "F10", shift: false, keys: "F10" },
  { action: "into", label: "Step into", key: "F11", shift: false, keys: "F11" },
  { action: "out", label: "Step out", key: "F11", shift: true, keys: "Shift+F11" },
  { action: "continue", label: "Continue", key: "F8", shift: false, keys: "F8" },
];

/** The past tense of a step, as the driver line says it ("stepped over by Ada"). */
const DONE: Record<StepAction, string> = {
  over: "Stepped over",
  into: "Stepped into",
  out: "Stepped out",
  until: "Ran to this line",
  continue: "Continued",
};

/** Under way: "Ada is stepping over…". */
const DOING: Record<StepAction, string> = {
  over: "stepping over",
  into: "stepping into",
  out: "stepping out",
  until: "running to a line",
  continue: "continuing",
};

/** The step keys work anywhere on the page, in a console too: they type nothing. */
function onStepKey(event: KeyboardEvent): void {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const button = BUTTONS.find((item) => item.key === event.key && item.shift === event.shiftKey);
  if (button === undefined || currentStop.peek() === null) return;
  event.preventDefault();
  void takeStep(button.action);
}

function StepButtons({ disabled }: { disabled: boolean }) {
  return (
    <span class="step-buttons" role="group" aria-label="Step">
      {BUTTONS.map((button) => (
        <button
          key={button.action}
          type="button"
          class={button.action === "continue" ? "button primary" : "button"}
          data-testid={button.action === "continue" ? "continue" : `step-${button.action}`}
          aria-keyshortcuts={button.keys}
          title={`${button.label} (${button.keys})`}
          disabled={disabled}
          onClick={() => void takeStep(button.action)}
        >
          {button.label}
        </button>
      ))}
    </span>
  );
}

/** Where the thread stands (function and line of its frame) and who took the step here. */
function Position({ report }: { report: Report }) {
  const frame = stopFrame(report);
  const action = report.step || null;
  return (
    <>
      {frame !== null && (
        <span data-testid="stop-position">
          At <code>{frame.function}</code>, line {String(frame.lineno)}.{" "}
        </span>
      )}
      {action !== null && (
        <span data-testid="step-driver">
          {DONE[action]} by {report.stepped_by || "someone"}.{" "}
        </span>
      )}
    </>
  );
}

/** The pause bar with its stepping buttons, for a paused report (null otherwise). */
function SteppingBar({ report }: { report: Report }) {
  const stop = currentStop.value;
  const waiting = stop !== null && stop.reportId === report.id;
  const moving = stepInFlight.value;
  const busy = moving !== null && moving.from === report.id;
  const error = stepError.value?.reportId === report.id ? stepError.value.message : null;

  useEffect(() => {
    if (!waiting) return undefined;
    document.addEventListener("keydown", onStepKey);
    return () => document.removeEventListener("keydown", onStepKey);
  }, [waiting]);

  if (report.paused !== true) return null;
  const next = report.next_pause ?? null;
  return (
    <div class={waiting || busy ? "agent-state stepping-bar live" : "agent-state stepping-bar"} data-testid="pause-bar" role="status">
      <p>
        {waiting && !busy
          ? `Paused ${report.step ? "after a step" : "at breakpoint()"}: the thread waits for Continue or a step. `
          : null}
        {!waiting && !busy ? "Was paused at breakpoint(): the thread went on. " : null}
        <Position report={report} />
        {busy && (
          <span data-testid="step-status">
            {moving.action === null
              ? `${moving.by || "Someone"} took a step: waiting for the next stop…`
              : `${moving.by === "you" ? "You are" : `${moving.by} is`} ${DOING[moving.action]}: waiting for the next stop…`}
          </span>
        )}
        {!waiting && next !== null && (
          <a href={reportHref(next)} data-testid="next-pause">
            Go to where it stopped next
          </a>
        )}
      </p>
      {(waiting || busy) && <StepButtons disabled={busy || !waiting} />}
      {waiting && <span class="muted small"> Run to a line: the ⇥ button of a line in the source below.</span>}
      {error && (
        <p class="error" role="alert" data-testid="step-error">
          {error}
        </p>
      )}
    </div>
  );
}

/** A line's "Run to this line" button, in the source of the frame the thread stands in. */
function RunToLine({ line }: { line: number }) {
  const stop = currentStop.value;
  const busy = stop === null || stepInFlight.value?.from === stop.reportId;
  return (
    <button
      type="button"
      class="run-to-line"
      data-testid="run-to-line"
      aria-label={`Run to line ${line}`}
      title={`Run to this line (${line})`}
      disabled={busy}
      onClick={(event) => {
        event.stopPropagation();
        void takeStep("until", line);
      }}
    />
  );
}

/** The per-line action for SourceView and FullSource, in the frame where the thread stands. */
function runToLine(line: number) {
  return <RunToLine line={line} />;
}

export { SteppingBar, runToLine };
