// Console state. The transcript of each console is the broker's: loaded when the console
// opens, kept live by the WebSocket's "console" events (everyone watching sees every entry,
// tagged with its author), reloaded after a reconnect. Evals and completions go over the
// WebSocket when it is up, else over HTTP (api/console.ts). Whoever ran an eval sees its result
// from the answer at once (its `entry` id names the transcript entry); the WebSocket
// copy of the same entry then replaces it by id, so it is never shown twice. The input history (↑/↓) is this
// browser's, per console, in localStorage; so is the display name sent with each eval.
// Which frame consoles are open is state too: the console toggle, the "c" shortcut and an
// entry's permalink (#/reports/{id}/frames/{index}/console/{entry}) all open one by setting it.
import { effect, signal, type Signal } from "@preact/signals";
import { fetchTranscript, interruptConsole, type ConsolePath } from "../api/client";
import { runCompletion, runEval } from "../api/console";
import type { CompleteResult, ConsoleEntry, ConsoleEvent, EvalResult } from "../api/types";
import { route } from "./route";

const MAX_HISTORY = 200;
const NAME_KEY = "debugbroker:name";
const transcripts = new Map<string, Signal<ConsoleEntry[]>>();
/** Consoles whose transcript was fetched at least once (reloaded after a reconnect). */
const loaded = new Set<ConsolePath>();
/** Why the transcript of a console could not be loaded, by console. */
const transcriptErrors = new Map<ConsolePath, Signal<string | null>>();
/** Whether a console's transcript load has answered (with entries or an error), by console. */
const transcriptsAnswered = new Map<ConsolePath, Signal<boolean>>();

function readName(): string {
  try {
    return localStorage.getItem(NAME_KEY) ?? "";
  } catch {
    return "";
  }
}

/** The display name this browser's evals carry (shown next to each entry for everyone). */
const displayName = signal(readName());

/** Change the display name (kept in localStorage). */
function setDisplayName(name: string): void {
  const cleaned = name.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, 100);
  displayName.value = cleaned;
  try {
    localStorage.setItem(NAME_KEY, cleaned);
  } catch {
    // storage disabled: the name lasts for this page
  }
}

/** The API path of a frame's console. */
function frameConsolePath(reportId: string, frameIndex: number): ConsolePath {
  return `reports/${encodeURIComponent(reportId)}/frames/${frameIndex}`;
}

/** The API path of an agent's process console. */
function agentConsolePath(agentId: string): ConsolePath {
  return `agents/${encodeURIComponent(agentId)}`;
}

/** The transcript of a console ("reports/{id}/frames/{index}" or "agents/{id}"). */
function transcriptFor(console: ConsolePath): Signal<ConsoleEntry[]> {
  let transcript = transcripts.get(console);
  if (transcript === undefined) {
    transcript = signal<ConsoleEntry[]>([]);
    transcripts.set(console, transcript);
  }
  return transcript;
}

/** Why the transcript could not be loaded, or null. */
function transcriptErrorFor(console: ConsolePath): Signal<string | null> {
  let error = transcriptErrors.get(console);
  if (error === undefined) {
    error = signal<string | null>(null);
    transcriptErrors.set(console, error);
  }
  return error;
}

/** Whether the transcript's first load has answered (an entry not in it is then really missing). */
function transcriptLoadedFor(console: ConsolePath): Signal<boolean> {
  let answered = transcriptsAnswered.get(console);
  if (answered === undefined) {
    answered = signal(false);
    transcriptsAnswered.set(console, answered);
  }
  return answered;
}

/** Insert or replace entries by id, keeping the transcript ordered by id. */
function merge(console: ConsolePath, entries: ConsoleEntry[]): void {
  const transcript = transcriptFor(console);
  const byId = new Map(transcript.value.map((entry) => [entry.id, entry]));
  for (const entry of entries) {
    const known = byId.get(entry.id);
    // A "running" event can arrive after the "done" answer: never go back.
    if (known !== undefined && known.state !== "running" && entry.state === "running") continue;
    byId.set(entry.id, entry);
  }
  transcript.value = [...byId.values()].sort((a, b) => a.id - b.id);
}

/** Fetch a console's transcript from the broker (on open, and after a reconnect). */
async function loadTranscript(console: ConsolePath): Promise<void> {
  loaded.add(console);
  try {
    const { entries } = await fetchTranscript(console);
    merge(console, entries);
    transcriptErrorFor(console).value = null;
  } catch (error) {
    transcriptErrorFor(console).value = error instanceof Error ? error.message : String(error);
  }
  transcriptLoadedFor(console).value = true;
}

/** Refetch every transcript seen so far (the WebSocket reconnected: events may be lost). */
function reloadTranscripts(): void {
  for (const console of loaded) void loadTranscript(console);
}

/** A WebSocket "console" event: an entry started or finished, by anyone. */
function applyConsoleEvent(event: ConsoleEvent): void {
  const { entry } = event;
  if (typeof entry.target !== "string" || typeof entry.id !== "number") return;
  merge(entry.target, [entry]);
}

function historyKey(console: ConsolePath): string {
  return `debugbroker:history:${console}`;
}

/** The inputs run in this console from this browser, oldest first. */
function historyFor(console: ConsolePath): string[] {
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(historyKey(console)) ?? "[]");
    return Array.isArray(stored) ? stored.filter((item): item is string => typeof item === "string") : [];
  } catch {
    return [];
  }
}

function remember(console: ConsolePath, code: string): void {
  const history = historyFor(console).filter((item) => item !== code);
  history.push(code);
  try {
    localStorage.setItem(historyKey(console), JSON.stringify(history.slice(-MAX_HISTORY)));
  } catch {
    // storage full or disabled: the history is a convenience, not data
  }
}

/** The frame consoles open on the report page, as "{report id}/{frame index}". */
const openFrameConsoles = signal<ReadonlySet<string>>(new Set());

function frameKey(reportId: string, frameIndex: number): string {
  return `${reportId}/${frameIndex}`;
}

/** Whether the console of frame `frameIndex` of report `reportId` is open (read in render: it subscribes). */
function isConsoleOpen(reportId: string, frameIndex: number): boolean {
  return openFrameConsoles.value.has(frameKey(reportId, frameIndex));
}

/** Open or close the console of a frame. */
function setConsoleOpen(reportId: string, frameIndex: number, open: boolean): void {
  const key = frameKey(reportId, frameIndex);
  if (openFrameConsoles.peek().has(key) === open) return;
  const next = new Set(openFrameConsoles.peek());
  if (open) next.add(key);
  else next.delete(key);
  openFrameConsoles.value = next;
}

// Leaving a report closes its consoles (as unmounting its frames always did); an address that
// points at a console entry opens that frame's console.
effect(() => {
  const current = route.value;
  const open = openFrameConsoles.peek();
  if (current.name !== "report") {
    if (open.size > 0) openFrameConsoles.value = new Set();
    return;
  }
  const prefix = `${current.id}/`;
  const kept = new Set([...open].filter((key) => key.startsWith(prefix)));
  if (current.frame !== null && current.entry != null) kept.add(frameKey(current.id, current.frame));
  if (kept.size !== open.size || [...kept].some((key) => !open.has(key))) openFrameConsoles.value = kept;
});

/** The outcome of submitting input: more lines needed, or it ran (see the transcript). */
type Submitted = { incomplete: true } | { incomplete: false; result: EvalResult };

/**
 * Run `code` in the console. With `interactive`, the agent may answer that the input is
 * incomplete (a block still open): nothing ran and the caller keeps collecting lines.
 * Errors of the request itself (process gone…) throw an ApiError with the broker's message.
 */
async function submitInput(console: ConsolePath, code: string, interactive: boolean): Promise<Submitted> {
  const answer = await runEval(console, code, interactive, displayName.value);
  if (answer.incomplete) return { incomplete: true };
  remember(console, code);
  const { entry, ...result } = answer;
  if (entry !== null) showAnswer(console, entry, code, result);
  return { incomplete: false, result };
}

/**
 * Show an eval's answer in its transcript at once, as entry `id` "done" (the WebSocket's
 * "running" event may not even have come yet; its "done" copy replaces this one by id).
 */
function showAnswer(console: ConsolePath, id: number, code: string, result: EvalResult): void {
  const known = transcriptFor(console).peek().find((entry) => entry.id === id);
  const started: ConsoleEntry = known ?? {
    id,
    target: console,
    author: displayName.peek().trim() || "anonymous",
    code,
    created: Date.now() / 1000,
    state: "running",
    result: null,
    failure: null,
  };
  merge(console, [{ ...started, state: "done", result, failure: null }]);
}

/** Completions for the end of `text` (the text before the cursor). */
function completeInput(console: ConsolePath, text: string): Promise<CompleteResult> {
  return runCompletion(console, text);
}

/** Interrupt what runs in this console; resolves to how many evals were interrupted. */
async function interruptRunning(console: ConsolePath): Promise<number> {
  return (await interruptConsole(console)).interrupted;
}

export {
  agentConsolePath,
  applyConsoleEvent,
  completeInput,
  displayName,
  frameConsolePath,
  historyFor,
  interruptRunning,
  isConsoleOpen,
  loadTranscript,
  reloadTranscripts,
  setConsoleOpen,
  setDisplayName,
  submitInput,
  transcriptErrorFor,
  transcriptFor,
  transcriptLoadedFor,
  type Submitted,
};
