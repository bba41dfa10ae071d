// HTTP calls to the broker's JSON API (docs/api.md). Same-origin cookies carry the session,
// and every POST also carries the session's key (X-Debugbroker-Key), which the login answered
// and which this tab keeps in memory and sessionStorage: the broker runs nothing for a cookie
// alone. A 401 asks the app to show the login form; every failure becomes an ApiError whose
// message is the broker's {"error"} text, ready to show to the user.
import type {
  AgentList,
  Breakpoint,
  BreakpointChange,
  BreakpointInput,
  BreakpointList,
  BrokerStatus,
  CompleteResult,
  EvalAnswer,
  FailureReason,
  InterruptResult,
  FrameSource,
  GroupList,
  Report,
  ReportList,
  ReprNode,
  ShareLink,
  StepAction,
  Transcript,
} from "./types";

/** A failed API call: the HTTP status (0 when the network failed) and a readable message. */
class ApiError extends Error {
  readonly status: number;
  /** Why the broker or the agent did not carry out the request, when it says. */
  readonly reason: FailureReason | null;

  constructor(status: number, message: string, reason: FailureReason | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.reason = reason;
  }
}

const FAILURE_REASONS: ReadonlySet<string> = new Set<FailureReason>([
  "released",
  "busy",
  "disabled",
  "timeout",
  "gone",
  "stopping",
  "bad_answer",
  "not_paused",
]);

let onUnauthorized: () => void = () => {};

const KEY_STORAGE = "debugbroker:session-key";
let sessionKey: string | null = readStoredKey();

function readStoredKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled: the key lives in memory only
  }
}

/** Keep the session's key for this tab (memory and sessionStorage, never a cookie). */
function setSessionKey(key: string): void {
  sessionKey = key;
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // memory only
  }
}

/** The session key this tab holds, if any. */
function currentSessionKey(): string | null {
  return sessionKey;
}

/** Forget this tab's session key (after a logout). */
function forgetSessionKey(): void {
  sessionKey = null;
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // memory only
  }
}

/** Register what happens when the broker answers 401 (the app shows its login form). */
function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

/** The message and reason of the broker's JSON error body ({"error", "reason"?}), or null. */
function brokerError(parsed: unknown): { message: string; reason: FailureReason | null } | null {
  if (parsed === null || typeof parsed !== "object" || !("error" in parsed)) return null;
  const { error, reason } = parsed as { error: unknown; reason?: unknown };
  const known = typeof reason === "string" && FAILURE_REASONS.has(reason) ? (reason as FailureReason) : null;
  return typeof error === "string" && error ? { message: error, reason: known } : null;
}

/** The ApiError of an error answer that came as a status and a parsed JSON body (the socket's). */
function apiErrorOf(status: number, body: unknown): ApiError {
  const found = brokerError(body);
  if (status === 401) onUnauthorized();
  return new ApiError(status, found?.message ?? `${status}`, found?.reason ?? null);
}

/** The broker's message (and reason) of an error answer, or a fallback from its text. */
async function errorOf(response: Response): Promise<{ message: string; reason: FailureReason | null }> {
  const fallback = `${response.status} ${response.statusText}`.trim();
  let body = "";
  try {
    body = await response.text();
  } catch {
    return { message: fallback, reason: null };
  }
  try {
    const found = brokerError(JSON.parse(body));
    if (found !== null) return found;
  } catch {
    // not JSON: a proxy's page or plain text; show the start of it
  }
  const text = body.trim().slice(0, 300);
  return { message: text ? `${fallback}: ${text}` : fallback, reason: null };
}

async function send(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...init });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ApiError(0, `Cannot reach the broker (${reason})`);
  }
  if (!response.ok) {
    const { message, reason } = await errorOf(response);
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, message, reason);
  }
  return response;
}

async function getJson<T>(path: string): Promise<T> {
  const response = await send(path, { headers: { Accept: "application/json" } });
  return (await response.json()) as T;
}

/** POST a JSON body (as `author`, when given) and read the JSON answer. */
function postJson<T>(path: string, body: unknown, author = ""): Promise<T> {
  return changeJson<T>("POST", path, body, author);
}

/** A state-changing request (POST, PATCH, DELETE) with the session's key and an optional
 * JSON body; its JSON answer. */
async function changeJson<T>(
  method: "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  author = "",
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // The display name travels percent-encoded: headers are Latin-1 only.
  if (author) headers["X-Debugbroker-Name"] = encodeURIComponent(author);
  if (sessionKey !== null) headers["X-Debugbroker-Key"] = sessionKey;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await send(path, init);
  return (await response.json()) as T;
}

/** GET /api/breakpoints: every breakpoint with its state in each agent. */
function fetchBreakpoints(): Promise<BreakpointList> {
  return getJson<BreakpointList>("/api/breakpoints");
}

/** POST /api/breakpoints: set one for an app's agents or one agent. */
async function createBreakpoint(input: BreakpointInput): Promise<Breakpoint> {
  return (await postJson<{ breakpoint: Breakpoint }>("/api/breakpoints", input)).breakpoint;
}

/** PATCH /api/breakpoints/{id}: enable, disable, or change its condition or hit count. */
async function updateBreakpoint(id: string, change: BreakpointChange): Promise<Breakpoint> {
  const path = `/api/breakpoints/${encodeURIComponent(id)}`;
  return (await changeJson<{ breakpoint: Breakpoint }>("PATCH", path, change)).breakpoint;
}

/** DELETE /api/breakpoints/{id}: remove it from the broker and its agents. */
async function deleteBreakpoint(id: string): Promise<void> {
  await changeJson<unknown>("DELETE", `/api/breakpoints/${encodeURIComponent(id)}`);
}

/** GET /api/reports: newest first, optionally only those created before `before`. */
function fetchReports(limit = 100, before?: number): Promise<ReportList> {
  const query = new URLSearchParams({ limit: String(limit) });
  if (before !== undefined) query.set("before", String(before));
  return getJson<ReportList>(`/api/reports?${query}`);
}

/** GET /api/reports/{id}: the full report with highlighted frames and agent_alive. */
function fetchReport(id: string): Promise<Report> {
  return getJson<Report>(`/api/reports/${encodeURIComponent(id)}`);
}

/** GET /api/reports/{id}/text: the plain-text traceback as the app printed it. */
async function fetchReportText(id: string): Promise<string> {
  const response = await send(`/api/reports/${encodeURIComponent(id)}/text`, {
    headers: { Accept: "text/plain" },
  });
  return response.text();
}

/** GET /api/agents: live agents first. */
function fetchAgents(): Promise<AgentList> {
  return getJson<AgentList>("/api/agents");
}

/** What the dashboard reads of GET /api/status: whether the agent link is plain text, and
 * the session's role (a view-only session may not triage). */
interface LinkStatus {
  insecure_plaintext: boolean;
  role?: "full" | "view";
}

/** GET /api/status (its agent-link and role part). */
function fetchLinkStatus(): Promise<LinkStatus> {
  return getJson<LinkStatus>("/api/status");
}

/** POST /api/reports/{id}/continue: the thread paused at breakpoint() goes on. */
async function resumeReport(id: string): Promise<void> {
  await postJson<unknown>(`/api/reports/${encodeURIComponent(id)}/continue`, {});
}

/** POST /api/reports/{id}/step: the paused thread takes a step (`line` for "until") as `author`;
 * the next stop arrives later, as a new paused report (the "stepped" event). */
async function stepReport(id: string, action: StepAction, line: number, author: string): Promise<void> {
  await postJson<unknown>(`/api/reports/${encodeURIComponent(id)}/step`, { action, line }, author);
}

/** POST /api/reports/{id}/release: the agent drops the report's live frames. */
async function releaseFrames(id: string): Promise<void> {
  await postJson<unknown>(`/api/reports/${encodeURIComponent(id)}/release`, {});
}

/** The filters of GET /api/reports (docs/api.md); empty ones do not filter. */
interface ReportSearch {
  q?: string;
  type?: string;
  path?: string;
  agent?: string;
  app?: string;
  fingerprint?: string;
  /** The group's triage state. */
  state?: string;
  /** Created at or after this time (seconds, as text). */
  since?: string;
}

/** GET /api/reports with filters: searches every stored report on the broker; `after`: the
 * last row of the previous page (stable pages, newest first). */
function searchReports(
  search: ReportSearch,
  limit = 200,
  after?: { created: number; id: string },
): Promise<ReportList> {
  const query = new URLSearchParams({ limit: String(limit) });
  for (const [name, value] of Object.entries(search)) {
    if (typeof value === "string" && value.trim()) query.set(name, value.trim());
  }
  if (after) {
    query.set("before", String(after.created));
    query.set("before_id", after.id);
  }
  return getJson<ReportList>(`/api/reports?${query}`);
}

/** GET /api/groups: repeated errors by fingerprint, most recently seen first. */
function fetchGroups(
  limit = 200,
  options: { state?: string; after?: { last_seen: number; fingerprint: string } } = {},
): Promise<GroupList> {
  const query = new URLSearchParams({ limit: String(limit) });
  if (options.state) query.set("state", options.state);
  if (options.after) {
    query.set("before", String(options.after.last_seen));
    query.set("before_key", options.after.fingerprint);
  }
  return getJson<GroupList>(`/api/groups?${query}`);
}

/** What POST /api/groups/{fingerprint}/state takes: a state, and how long a mute lasts. */
type GroupStateChange =
  | { state: "resolved" | "open" | "ignored" }
  | { state: "muted"; minutes: number }
  | { state: "muted"; occurrences: number };

/** POST /api/groups/{fingerprint}/state: resolve, reopen, ignore or mute a group. */
async function changeGroupState(fingerprint: string, change: GroupStateChange): Promise<void> {
  await changeJson<unknown>("POST", `/api/groups/${encodeURIComponent(fingerprint)}/state`, change);
}

/** DELETE /api/groups/{fingerprint}: the group, its counts and its reports. */
async function deleteGroup(fingerprint: string): Promise<void> {
  await changeJson<unknown>("DELETE", `/api/groups/${encodeURIComponent(fingerprint)}`);
}

/** DELETE /api/reports/{id}: one report (its group still counts it as seen). */
async function deleteReport(id: string): Promise<void> {
  await changeJson<unknown>("DELETE", `/api/reports/${encodeURIComponent(id)}`);
}

/** What POST /api/clear must be sent to delete everything. */
const CLEAR_CONFIRMATION = "delete everything";

/** POST /api/clear: every report, group and share link. */
async function clearStore(): Promise<void> {
  await changeJson<unknown>("POST", "/api/clear", { confirm: CLEAR_CONFIRMATION });
}

/** POST /api/reports/{id}/frames/{index}/expand: more of a truncated value (the "+"). */
async function expandValue(id: string, index: number, handle: string, offset: number): Promise<ReprNode> {
  const path = `/api/reports/${encodeURIComponent(id)}/frames/${index}/expand`;
  return (await postJson<{ node: ReprNode }>(path, { handle, offset })).node;
}

/** GET /api/reports/{id}/frames/{index}/source: the frame's whole file, or the captured lines. */
function fetchFrameSource(id: string, index: number): Promise<FrameSource> {
  return getJson<FrameSource>(`/api/reports/${encodeURIComponent(id)}/frames/${index}/source`);
}

/** GET /api/reports/{id}/markdown: the report for an issue tracker. */
async function fetchReportMarkdown(id: string): Promise<string> {
  const response = await send(`/api/reports/${encodeURIComponent(id)}/markdown`, {
    headers: { Accept: "text/markdown" },
  });
  return response.text();
}

/** POST /api/reports/{id}/share: a new read-only link that needs no login. */
function createShareLink(id: string): Promise<ShareLink> {
  return postJson<ShareLink>(`/api/reports/${encodeURIComponent(id)}/share`, {});
}

/** What a login presents: the broker's token, or a one-time code from a login URL. */
type Credential = { token: string } | { code: string };

/** POST /login: null once the session is open (cookie set, key kept), else why it failed. */
async function logIn(credential: Credential): Promise<string | null> {
  let response: Response;
  try {
    response = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(credential),
    });
  } catch (error) {
    return `Cannot reach the broker (${error instanceof Error ? error.message : String(error)})`;
  }
  if (response.ok) {
    const answer = (await response.json()) as { key?: unknown };
    if (typeof answer.key !== "string") return "The broker's login answer has no session key.";
    setSessionKey(answer.key);
    return null;
  }
  if (response.status === 401) {
    return "token" in credential
      ? "That token is not valid for this broker."
      : "This login link was used already or has expired. Paste the token instead.";
  }
  return (await errorOf(response)).message;
}

/** POST /logout: the broker ends this browser's session (every tab's); the key is forgotten. */
async function logOut(): Promise<void> {
  try {
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } });
  } finally {
    forgetSessionKey();
  }
}

/** Where a console runs: "reports/{id}/frames/{index}" or "agents/{agent_id}" (API paths). */
type ConsolePath = string;

/** POST /api/{console}/eval: run `code` as `author`; `interactive` asks the REPL's "is it complete?". */
function evaluateInConsole(console: ConsolePath, code: string, interactive: boolean, author: string): Promise<EvalAnswer> {
  return postJson<EvalAnswer>(`/api/${console}/eval`, { code, interactive }, author);
}

/** POST /api/{console}/complete: names and attributes completing the end of `text`. */
function completeInConsole(console: ConsolePath, text: string): Promise<CompleteResult> {
  return postJson<CompleteResult>(`/api/${console}/complete`, { text });
}

/** POST /api/{console}/interrupt: raise KeyboardInterrupt in the evals running there. */
function interruptConsole(console: ConsolePath): Promise<InterruptResult> {
  return postJson<InterruptResult>(`/api/${console}/interrupt`, {});
}

/** GET /api/status: the broker's counters (the dashboard reads the store's). */
function fetchStatus(): Promise<BrokerStatus> {
  return getJson<BrokerStatus>("/api/status");
}

/** GET /api/{console}/transcript: the shared transcript, oldest first. */
function fetchTranscript(console: ConsolePath): Promise<Transcript> {
  return getJson<Transcript>(`/api/${console}/transcript`);
}

export {
  ApiError,
  apiErrorOf,
  changeGroupState,
  CLEAR_CONFIRMATION,
  clearStore,
  completeInConsole,
  type ConsolePath,
  createBreakpoint,
  createShareLink,
  type Credential,
  currentSessionKey,
  deleteBreakpoint,
  deleteGroup,
  deleteReport,
  evaluateInConsole,
  expandValue,
  fetchAgents,
  fetchBreakpoints,
  fetchFrameSource,
  fetchGroups,
  fetchLinkStatus,
  fetchReport,
  fetchReportMarkdown,
  fetchReports,
  fetchReportText,
  fetchStatus,
  fetchTranscript,
  type GroupStateChange,
  interruptConsole,
  type LinkStatus,
  logIn,
  logOut,
  releaseFrames,
  type ReportSearch,
  resumeReport,
  searchReports,
  setSessionKey,
  setUnauthorizedHandler,
  stepReport,
  updateBreakpoint,
};
