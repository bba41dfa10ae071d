// Breakpoints set from the dashboard: the broker's list (read once it is first needed, then
// kept current by the "breakpoints" events), the line whose breakpoint form is open, and the
// calls that set, change and remove them. The broker answers each change with an event that
// carries the whole list, so every viewer sees the same breakpoints and agents' states.
import { signal } from "@preact/signals";
import { createBreakpoint, deleteBreakpoint, fetchBreakpoints, updateBreakpoint } from "../api/client";
import type { Breakpoint, BreakpointChange, BreakpointInput, BreakpointsEvent } from "../api/types";

/** Every breakpoint, oldest first, or null before the first answer (read as the session
 * starts and again after the event stream reconnects). */
const breakpoints = signal<Breakpoint[] | null>(null);

/** Why the list could not be read, or null. */
const breakpointsError = signal<string | null>(null);

/** The line whose "set a breakpoint" form is open: its file, line, the report's app and agent,
 * and which view's line number opened it (the form shows under that view only). */
interface BreakpointDraft {
  file: string;
  line: number;
  app: string;
  agentId: string;
  where: string;
}

const breakpointDraft = signal<BreakpointDraft | null>(null);

/** Read the list now. */
async function loadBreakpoints(): Promise<void> {
  try {
    breakpoints.value = (await fetchBreakpoints()).breakpoints;
    breakpointsError.value = null;
  } catch (failure) {
    breakpointsError.value = failure instanceof Error ? failure.message : String(failure);
  }
}

/** How many "breakpoints" events have come: an answer to a change is stale once one came
 * after the change was sent (the broker publishes the list after every change, and the
 * agents' states may follow before the HTTP answer reaches this tab). */
let eventsSeen = 0;

/** A "breakpoints" event: the whole list as it is now. */
function applyBreakpointsEvent(event: BreakpointsEvent): void {
  eventsSeen += 1;
  breakpoints.value = event.breakpoints;
}

/** The breakpoints at `line` of `file` that apply to the report's `app` (any scope in it). */
function breakpointsAt(file: string, line: number, app: string): Breakpoint[] {
  return (breakpoints.value ?? []).filter((point) => point.file === file && point.line === line && point.app === app);
}

/** Open the form for a line (or close it, when it is open for that line already). */
function toggleDraft(draft: BreakpointDraft): void {
  const open = breakpointDraft.value;
  const same = open !== null && open.file === draft.file && open.line === draft.line && open.where === draft.where;
  breakpointDraft.value = same ? null : draft;
}

function closeDraft(): void {
  breakpointDraft.value = null;
}

/** Show the broker's answer to a change sent when `eventsSeen` was `sentAt`, unless an event
 * came since: it is newer than the answer (its states would be wiped by the answer's none). */
function merge(changed: Breakpoint, sentAt: number): void {
  if (eventsSeen !== sentAt) {
    return;
  }
  const list = breakpoints.value ?? [];
  const known = list.some((point) => point.id === changed.id);
  breakpoints.value = known ? list.map((point) => (point.id === changed.id ? changed : point)) : [...list, changed];
}

/** Set a breakpoint; the event that follows brings the agents' states. */
async function addBreakpoint(input: BreakpointInput): Promise<void> {
  const sentAt = eventsSeen;
  merge(await createBreakpoint(input), sentAt);
}

async function changeBreakpoint(id: string, change: BreakpointChange): Promise<void> {
  const sentAt = eventsSeen;
  merge(await updateBreakpoint(id, change), sentAt);
}

async function removeBreakpoint(id: string): Promise<void> {
  await deleteBreakpoint(id);
  breakpoints.value = (breakpoints.value ?? []).filter((point) => point.id !== id);
}

export {
  addBreakpoint,
  applyBreakpointsEvent,
  breakpointDraft,
  breakpoints,
  breakpointsAt,
  breakpointsError,
  changeBreakpoint,
  closeDraft,
  loadBreakpoints,
  removeBreakpoint,
  toggleDraft,
  type BreakpointDraft,
};
