// Moving through the reports with the keyboard: the list's selected row, the next and
// previous report from a report page, the list a report page goes back to, and the shortcut
// help overlay's state.
import { effect, signal } from "@preact/signals";
import { visibleReports } from "./reports";
import { parseRoute, reportHref, route } from "./route";

/** The id of the list's selected row (j/k move it, Enter opens it), or null. */
const selectedId = signal<string | null>(null);

/** Whether the keyboard shortcut help is open. */
const helpOpen = signal(false);

/** The list a report page goes back to (Esc, its breadcrumb): the grouped home or the flat list. */
const backHref = signal("#/");

// The report shown is the list's selected row: back on the list, j/k go on from it.
effect(() => {
  const current = route.value;
  if (current.name === "report") selectedId.value = current.id;
  else if (current.name === "list") backHref.value = "#/reports";
  else if (current.name === "groups") backHref.value = "#/";
});

/** Position of report `id` in the shown list, or -1. */
function positionOf(id: string | null): number {
  if (id === null) return -1;
  return visibleReports.value.findIndex((report) => report.id === id);
}

/** Select the row `step` rows below (positive) or above (negative) the selected one. */
function moveSelection(step: number): void {
  const list = visibleReports.value;
  if (list.length === 0) return;
  const current = positionOf(selectedId.value);
  const next = current < 0 ? (step > 0 ? 0 : list.length - 1) : current + step;
  const clamped = Math.max(0, Math.min(list.length - 1, next));
  selectedId.value = list[clamped]?.id ?? null;
}

/** From a report page, open the report `step` rows below or above it in the list. */
function openAdjacentReport(step: number): void {
  // From the address itself: a quick second key press comes before the hashchange event.
  const current = parseRoute(location.hash);
  if (current.name !== "report") return;
  const list = visibleReports.value;
  const position = positionOf(current.id);
  const target = position < 0 ? list[0] : list[position + step];
  if (target === undefined) return;
  selectedId.value = target.id;
  location.hash = reportHref(target.id);
}

export { backHref, helpOpen, moveSelection, openAdjacentReport, positionOf, selectedId };
