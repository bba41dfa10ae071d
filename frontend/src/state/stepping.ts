// Stepping a thread paused at breakpoint() (docs/frameworks.md, "Stepping"): each step makes
// the thread pause again in a new paused report. The broker's "stepped" event moves every tab
// that shows the stop a step left to the stop it led to, so everyone watching sees the same
// position and who took the step; a console open where the thread stood opens where it stands.
import { batch, computed, signal } from "@preact/signals";
import { ApiError, fetchReport, stepReport } from "../api/client";
import type { FrameInfo, Report, ResumedEvent, StepAction, SteppedEvent } from "../api/types";
import { displayName, isConsoleOpen, setConsoleOpen } from "./consoles";
import { refreshSelected, selected } from "./reports";
import { parseRoute, reportHref, route } from "./route";

/** The stop a paused report stands at: its frame, the innermost of the last exception. */
function stopFrame(report: Report): FrameInfo | null {
  const info = report.exceptions[report.exceptions.length - 1];
  return info?.frames[info.frames.length - 1] ?? null;
}

/** Where the shown report's thread waits and can step from, or null (not paused, went on). */
interface Stop {
  reportId: string;
  frame: FrameInfo;
}

const currentStop = computed<Stop | null>(() => {
  const report = selected.value?.report;
  if (!report || report.paused !== true || report.resumable !== true || !report.agent_alive) return null;
  const frame = stopFrame(report);
  return frame === null ? null : { reportId: report.id, frame };
});

/** A step taken from report `from` (by this tab or, from the "resumed" event, anyone) whose
 * next stop has not been shown yet; `action` is null when another tab took it. */
interface Step {
  from: string;
  action: StepAction | null;
  by: string;
}
const stepInFlight = signal<Step | null>(null);

/** For each stop this tab followed a step to, the first stop of that run of steps: the report
 * page keeps its state (open views, toggles) while it follows (App keys the page by it). */
const followedFrom = new Map<string, string>();

/** The key of the report page for report `id`: the same for every stop of one run of steps. */
function pageKey(id: string): string {
  return followedFrom.get(id) ?? id;
}

/** Why the last step from `reportId` was not taken. */
const stepError = signal<{ reportId: string; message: string } | null>(null);

/** What to show for a refused or failed step: the broker's words, with what they mean. */
function failureText(failure: unknown): string {
  if (!(failure instanceof ApiError)) return failure instanceof Error ? failure.message : String(failure);
  const said = failure.message.replace(/\.$/, "");
  if (failure.status === 403) return `Step refused: ${said}.`;
  if (failure.status === 409) return `Cannot step: ${said}.`;
  if (failure.status === 410) return `Cannot step: the process is gone (${said}).`;
  return `Step failed: ${said}.`;
}

/** Take `action` from the stop shown (`line`: the line to run to, for "until"). */
async function takeStep(action: StepAction, line = 0): Promise<void> {
  const stop = currentStop.peek();
  if (stop === null || stepInFlight.peek()?.from === stop.reportId) return;
  const name = displayName.peek().trim();
  stepInFlight.value = { from: stop.reportId, action, by: name || "you" };
  stepError.value = null;
  try {
    await stepReport(stop.reportId, action, line, name);
    // Continue leads to no stop: nothing more to wait for.
    if (action === "continue" && stepInFlight.peek()?.from === stop.reportId) stepInFlight.value = null;
  } catch (failure) {
    if (stepInFlight.peek()?.from === stop.reportId) stepInFlight.value = null;
    stepError.value = { reportId: stop.reportId, message: failureText(failure) };
    // This tab missed that the thread went on (or its process went): show where it is now.
    if (failure instanceof ApiError && (failure.status === 409 || failure.status === 410)) await refreshSelected();
  }
}

/** A paused thread went on: with a step, the tabs that did not take it show who did. */
function noteResumed(event: ResumedEvent): void {
  if (event.reason !== "step" || stepInFlight.peek()?.from === event.report_id) return;
  if (selected.peek()?.report?.id !== event.report_id) return;
  stepInFlight.value = { from: event.report_id, action: null, by: event.by ?? "" };
}

/** A step from `event.from` stopped again: a tab showing that stop follows to the new one. */
async function applySteppedEvent(event: SteppedEvent): Promise<void> {
  const before = selected.peek();
  if (before?.report?.id === event.from) {
    const report = { ...before.report, resumable: false, next_pause: event.report_id };
    selected.value = { ...before, report };
  }
  const shown = route.peek();
  if (shown.name !== "report" || shown.id !== event.from) return;
  let report: Report;
  try {
    report = await fetchReport(event.report_id);
  } catch (failure) {
    stepError.value = { reportId: event.from, message: `The next stop could not be loaded: ${failureText(failure)}` };
    return;
  }
  const now = route.peek();
  if (now.name !== "report" || now.id !== event.from) return; // the viewer went elsewhere meanwhile
  if (stepInFlight.peek()?.from === event.from) stepInFlight.value = null;
  const old = before?.report ? stopFrame(before.report) : null;
  const frame = stopFrame(report);
  if (old !== null && frame !== null && isConsoleOpen(event.from, old.index)) {
    setConsoleOpen(report.id, frame.index, true);
  }
  // The report and the route change together (the page never shows "Loading" between the
  // two stops, and its frames keep their state: an open whole-file view follows), and the
  // page's selectReport() then finds the report already there.
  const href = reportHref(report.id, frame?.index);
  followedFrom.set(report.id, pageKey(event.from));
  batch(() => {
    selected.value = { id: report.id, report, error: null };
    route.value = parseRoute(href);
  });
  location.hash = href;
}

export { applySteppedEvent, currentStop, noteResumed, pageKey, stepError, stepInFlight, stopFrame, takeStep, type Stop };
