// Console transcripts, one per frame (kept in memory while the page lives), and each frame's
// input history (kept in sessionStorage, so a reload keeps the arrow-key history).
import { signal, type Signal } from "@preact/signals";
import { evaluateInFrame } from "../api/client";
import type { EvalResult } from "../api/types";

/** One command typed into a console and what came back. */
interface ConsoleEntry {
  id: number;
  code: string;
  /** The answer; null while the command runs or when the request failed. */
  result: EvalResult | null;
  /** Why the request failed (HTTP or network error), or null. */
  failure: string | null;
}

const MAX_HISTORY = 100;
const transcripts = new Map<string, Signal<ConsoleEntry[]>>();
let nextEntryId = 1;

function frameKey(reportId: string, index: number): string {
  return `${reportId}/${index}`;
}

/** The transcript of the console on frame `index` of report `reportId`. */
function transcriptFor(reportId: string, index: number): Signal<ConsoleEntry[]> {
  const key = frameKey(reportId, index);
  let transcript = transcripts.get(key);
  if (transcript === undefined) {
    transcript = signal<ConsoleEntry[]>([]);
    transcripts.set(key, transcript);
  }
  return transcript;
}

function historyKey(reportId: string, index: number): string {
  return `debugbroker:history:${frameKey(reportId, index)}`;
}

/** The commands typed on this frame, oldest first. */
function historyFor(reportId: string, index: number): string[] {
  try {
    const stored: unknown = JSON.parse(sessionStorage.getItem(historyKey(reportId, index)) ?? "[]");
    return Array.isArray(stored) ? stored.filter((item) => typeof item === "string") : [];
  } catch {
    return [];
  }
}

function remember(reportId: string, index: number, code: string): void {
  const history = historyFor(reportId, index).filter((item) => item !== code);
  history.push(code);
  try {
    sessionStorage.setItem(historyKey(reportId, index), JSON.stringify(history.slice(-MAX_HISTORY)));
  } catch {
    // storage full or disabled: the history is a convenience, not data
  }
}

/** Run `code` in the frame and record the command and its answer in the transcript. */
async function runInFrame(reportId: string, index: number, code: string): Promise<void> {
  const transcript = transcriptFor(reportId, index);
  const id = nextEntryId++;
  transcript.value = [...transcript.value, { id, code, result: null, failure: null }];
  remember(reportId, index, code);
  let done: Partial<ConsoleEntry>;
  try {
    done = { result: await evaluateInFrame(reportId, index, code) };
  } catch (error) {
    done = { failure: error instanceof Error ? error.message : String(error) };
  }
  transcript.value = transcript.value.map((entry) => (entry.id === id ? { ...entry, ...done } : entry));
}

/** Forget the transcript (not the input history) of one frame's console. */
function clearTranscript(reportId: string, index: number): void {
  transcriptFor(reportId, index).value = [];
}

export { clearTranscript, historyFor, runInFrame, transcriptFor, type ConsoleEntry };
