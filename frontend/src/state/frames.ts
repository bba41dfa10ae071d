// Held frames: the broker's "frames" event updates the open report, for every viewer.
import type { FramesEvent } from "../api/types";
import { selected } from "./reports";

/** Some reports' frames were released: the open report shows it (and when) at once. */
function applyFramesEvent(event: FramesEvent): void {
  const current = selected.value;
  if (current === null || current.report === null) return;
  if (!event.report_ids.includes(current.report.id)) return;
  const report = { ...current.report, frames_held: event.held, frames_released: event.held ? null : event.at };
  selected.value = { ...current, report };
}

export { applyFramesEvent };
