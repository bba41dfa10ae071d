// Held frames: what the agent still holds for a report. The broker's "frames" event updates
// the open report, for every viewer; releasing, expanding a value and reading a frame's whole
// file all ask the agent that holds the frame.
import { expandValue, fetchFrameSource, releaseFrames } from "../api/client";
import type { FrameSource, FramesEvent, ReprNode } from "../api/types";
import { refreshSelected, selected } from "./reports";

/** Some reports' frames were released: the open report shows it (and when) at once. */
function applyFramesEvent(event: FramesEvent): void {
  const current = selected.value;
  if (current === null || current.report === null) return;
  if (!event.report_ids.includes(current.report.id)) return;
  const report = { ...current.report, frames_held: event.held, frames_released: event.held ? null : event.at };
  selected.value = { ...current, report };
}

/** The agent drops the report's live frames; the open report then shows them released. */
async function releaseHeldFrames(reportId: string): Promise<void> {
  await releaseFrames(reportId);
  await refreshSelected();
}

/** The next page (from `offset`) of a value cut short, from the agent holding the frame. */
function loadMoreOfValue(reportId: string, frameIndex: number, handle: string, offset: number): Promise<ReprNode> {
  return expandValue(reportId, frameIndex, handle, offset);
}

/** A frame's whole source file, from the agent holding it, else the lines the report captured. */
function loadFrameSource(reportId: string, frameIndex: number): Promise<FrameSource> {
  return fetchFrameSource(reportId, frameIndex);
}

export { applyFramesEvent, loadFrameSource, loadMoreOfValue, releaseHeldFrames };
