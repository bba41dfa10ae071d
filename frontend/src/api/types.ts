// The broker's JSON, typed. The interfaces named like a dataclass in agent/protocol.py mirror
// it field for field (tests/agent/test_protocol.py checks the names): tuple[X, ...] is X[],
// `X | None` is `X | null`. The wire always carries every field, defaults included.

/** A value rendered safely as a tree: never HTML, always bounded. */
export interface ReprNode {
  kind: string;
  type_name: string;
  text: string;
  children: ReprNode[];
  omitted: number;
  more: string | null;
}

/** A named value: a local variable or an attribute. */
export interface Variable {
  name: string;
  value: ReprNode;
}

/** One line of highlighted source: [Pygments short class name or "", text] pairs. */
export type HighlightLine = [string, string][];

/** One traceback frame with its source context and locals; `highlight` is added by the broker. */
export interface FrameInfo {
  index: number;
  frame_id: string | null;
  filename: string;
  lineno: number;
  function: string;
  module: string;
  context_start: number;
  context: string[];
  locals: Variable[];
  end_lineno: number | null;
  colno: number | null;
  end_colno: number | null;
  is_library: boolean;
  hidden: boolean;
  highlight: HighlightLine[];
}

/** How an exception is linked to the one printed before it. */
export type ChainLink = "cause" | "context";

/** One exception of a chain or group, with its own frames. */
export interface ExceptionInfo {
  type_name: string;
  module: string;
  message: string;
  frames: FrameInfo[];
  notes: string[];
  chain: ChainLink | null;
  exceptions: ExceptionInfo[];
  /** Sub-exceptions left out: past CPython's 15 per group, or all of a group nested too deep. */
  omitted: number;
}

/** The request that failed, as the app saw it (secrets masked). */
export interface RequestInfo {
  method: string;
  url: string;
  headers: [string, string][];
  query: [string, string][];
  /** Only what the app itself parsed: the agent never reads the body. */
  form: [string, string][];
  cookies: [string, string][];
  environ: [string, string][];
  /** Why a form-encoded request shows no form, or "". */
  form_note: string;
}

/** Where a report came from, beside the traceback (a task, a log record, the caller's context). */
export interface Panel {
  title: string;
  /** Name and safe repr text, secrets masked by the agent. */
  items: [string, string][];
}

/** A captured error; `agent_alive` is added by the broker. */
export interface Report {
  id: string;
  agent_id: string;
  created: number;
  type_name: string;
  message: string;
  text: string;
  exceptions: ExceptionInfo[];
  request: RequestInfo | null;
  pid: number;
  host: string;
  app: string;
  paused?: boolean;
  /** Absent in reports stored before panels existed. */
  panels?: Panel[];
  /** A pause after a step: the paused report the step was taken from. */
  step_of?: string;
  /** That step's action. */
  step?: StepAction | "";
  /** sys.tracebacklimit when it left frames out of `text` (its outermost frames kept);
   * the frames here are kept whatever the limit. Null or absent: the text is whole. */
  tracebacklimit?: number | null;
  agent_alive: boolean;
  /** A breakpoint() pause whose thread still waits for Continue (POST .../continue). */
  resumable?: boolean;
  /** Who took the step that led to this pause (`step_of`), if the broker knows. */
  stepped_by?: string | null;
  /** The pause a step from this report led to, once it arrived. */
  next_pause?: string | null;
  /** The live agent still holds this report's frames (since `created`): consoles work. */
  frames_held?: boolean;
  /** When the broker learnt the frames were released (epoch seconds), if it knows. */
  frames_released?: number | null;
}

/** What an eval printed and returned, or why it failed (the HTTP answer has no request_id). */
export interface EvalResult {
  ok: boolean;
  output: string;
  result: ReprNode | null;
  error: string | null;
  /** The input needs more lines (a REPL's "..."): nothing ran. */
  incomplete: boolean;
  /** stdout/stderr text and echoed values, in the order they happened. */
  chunks: OutputChunk[];
  /** Why nothing ran (null: the code ran, even if it raised); see FailureReason. */
  reason: FailureReason | null;
}

/** POST .../eval: the agent's result and the id of its transcript entry (null: incomplete input). */
export interface EvalAnswer extends EvalResult {
  entry: number | null;
}

/**
 * Why a request was not carried out (protocol.FAILURE_REASONS): in an error answer's
 * `reason`, and in the results of the agent's refusals.
 */
export type FailureReason =
  | "released"
  | "busy"
  | "disabled"
  | "timeout"
  | "gone"
  | "stopping"
  | "bad_answer"
  | "not_paused";

/** One piece of an eval's output: `stream` is "stdout", "stderr" or "result" (then `value`). */
export interface OutputChunk {
  stream: string;
  text: string;
  value: ReprNode | null;
}

/** POST .../complete: each match replaces the last `replace` characters of the text. */
export interface CompleteResult {
  ok: boolean;
  matches: string[];
  replace: number;
  error: string | null;
  reason: FailureReason | null;
}

/** POST .../interrupt: how many running evals in the frame were interrupted. */
export interface InterruptResult {
  interrupted: number;
}

/** One eval in a console's shared transcript (GET .../transcript, WebSocket "console"). */
export interface ConsoleEntry {
  id: number;
  /** "reports/{id}/frames/{index}" or "agents/{agent_id}". */
  target: string;
  author: string;
  code: string;
  created: number;
  /** "running" until the answer came; "done" (see result) or "failed" (see failure). */
  state: "running" | "done" | "failed";
  result: EvalResult | null;
  failure: string | null;
}

/** WebSocket: a console entry started or finished. */
export interface ConsoleEvent {
  type: "console";
  entry: ConsoleEntry;
}

/** GET .../transcript: the entries, oldest first. */
export interface Transcript {
  entries: ConsoleEntry[];
}

/** A row of GET /api/reports. */
export interface ReportSummary {
  id: string;
  agent_id: string;
  created: number;
  type_name: string;
  message: string;
  pid: number;
  host: string;
  app: string;
  url: string | null;
  /** The group this report belongs to (GET /api/groups). */
  fingerprint: string;
}

/** A worker that raised the errors of a group. */
export interface GroupWorker {
  agent_id: string;
  pid: number;
  host: string;
  count: number;
}

/** Repeated errors with one fingerprint (GET /api/groups). */
export interface ReportGroup {
  fingerprint: string;
  state: GroupState;
  mute_until: number | null;
  mute_remaining: number | null;
  state_changed: number | null;
  /** Reports seen, exactly; `kept` of them are still stored (retention). */
  count: number;
  kept: number;
  first_seen: number;
  last_seen: number;
  /** Reports seen in each of the last 24 hours, oldest first. */
  hourly: number[];
  /** Null once retention or a delete took every report of the group. */
  latest: ReportSummary | null;
  apps: string[];
  workers: GroupWorker[];
}

/** A group's triage state. */
export type GroupState = "open" | "resolved" | "regressed" | "ignored" | "muted";

/** GET /api/groups. */
export interface GroupList {
  groups: ReportGroup[];
  /** How many groups are in the asked state, over all pages. */
  total: number;
}

/** GET /api/reports/{id}/frames/{index}/source. */
export interface FrameSource {
  filename: string;
  lineno: number;
  first_line: number;
  lines: string[];
  highlight: HighlightLine[];
  /** "agent": the whole file from the live process; "report": only the captured lines. */
  origin: "agent" | "report";
  truncated: boolean;
  note: string;
}

/** POST /api/reports/{id}/share. */
export interface ShareLink {
  share_id: string;
  path: string;
  url: string;
}

/** An agent process as GET /api/agents and the WebSocket describe it. */
export interface Agent {
  agent_id: string;
  pid: number;
  host: string;
  app: string;
  python: string;
  started: number;
  evalex: boolean;
  alive: boolean;
  last_seen: number;
  held_frames: number;
  dropped_reports?: number;
  /** The agent offers a console on its live process (DebuggedApplication(app, console=True)). */
  console?: boolean;
  /** Reports whose frames it holds, and their memory estimate in bytes (heartbeat). */
  held_reports?: number;
  held_bytes?: number;
}

/** WebSocket: a new report was stored. */
export interface ReportEvent {
  type: "report";
  report: ReportSummary;
}

/** WebSocket: an agent appeared, changed or went away. */
export interface AgentEvent {
  type: "agent";
  agent: Agent;
}

/** How a paused thread goes on (protocol/messages.py StepAction; POST .../step). */
export type StepAction = "over" | "into" | "out" | "until" | "continue";

/** WebSocket: the thread paused at breakpoint() in a report went on (Continue, a step or timeout). */
export interface ResumedEvent {
  type: "resumed";
  report_id: string;
  reason: string;
  /** With reason "step": who took the step. */
  by?: string;
}

/** WebSocket: a step from report `from` paused again in `report_id` (taken by `by`). */
export interface SteppedEvent {
  type: "stepped";
  from: string;
  report_id: string;
  by: string;
}

/** WebSocket: these reports' frames were released (the agent's caps, or POST .../release). */
export interface FramesEvent {
  type: "frames";
  report_ids: string[];
  held: boolean;
  at: number;
}

/** A dashboard tab that told the broker where it is (the id is the broker's, not the tab's). */
export interface Viewer {
  id: string;
  name: string;
  report: string | null;
  frame: number | null;
  since: number;
}

/** WebSocket, to one tab only, first: the id the broker gave this tab. */
export interface WelcomeEvent {
  type: "welcome";
  viewer: string;
}

/** WebSocket: every tab that told where it is, whenever one of them moves, joins or leaves. */
export interface PresenceEvent {
  type: "presence";
  viewers: Viewer[];
}

/** WebSocket, to the other tabs: a viewer typed in a console (`active: false`: stopped). */
export interface TypingEvent {
  type: "typing";
  viewer: string;
  name: string;
  console: string;
  active: boolean;
}

/** Where a breakpoint stands in one agent (protocol/messages.py BreakpointStatus). */
export type BreakpointStatus = "armed" | "pending" | "disabled" | "refused" | "error";

/** What one agent made of a breakpoint (protocol/messages.py BreakpointState, as the broker keeps it). */
export interface BreakpointState {
  status: BreakpointStatus;
  reason: string;
  warning: string;
  hits: number;
  /** When the broker heard it. */
  at?: number;
}

/** A breakpoint set from the dashboard (GET /api/breakpoints). */
export interface Breakpoint {
  id: string;
  app: string;
  /** Empty: every agent of the app. */
  agent_id: string;
  file: string;
  line: number;
  condition: string;
  hit_count: number;
  enabled: boolean;
  created: number;
  created_by: string;
  /** Agent id → its state there. */
  states: Record<string, BreakpointState>;
}

/** GET /api/breakpoints. */
export interface BreakpointList {
  breakpoints: Breakpoint[];
}

/** POST /api/breakpoints. */
export interface BreakpointInput {
  file: string;
  line: number;
  app?: string;
  agent_id?: string;
  condition?: string;
  hit_count?: number;
  enabled?: boolean;
}

/** PATCH /api/breakpoints/{id}. */
export interface BreakpointChange {
  condition?: string;
  hit_count?: number;
  enabled?: boolean;
}

/** WebSocket: the whole list of breakpoints, after any change (theirs or an agent's state). */
export interface BreakpointsEvent {
  type: "breakpoints";
  breakpoints: Breakpoint[];
}

/** Everything the broker sends over /api/ws. */
export type ServerEvent = ReportEvent | AgentEvent | ResumedEvent;

/** GET /api/reports. */
export interface ReportList {
  reports: ReportSummary[];
}

/** GET /api/agents. */
export interface AgentList {
  agents: Agent[];
}

/** The body of every error answer; `reason` when a request to an agent was not carried out. */
export interface ErrorBody {
  error: string;
  reason?: FailureReason;
}

/** What the store could not write (`GET /api/status` → `store`): counts since the broker started. */
export interface StoreStatus {
  stored: number;
  waiting: number;
  shed: number;
  not_stored: number;
  writes_waiting: number;
  writes_shed: number;
  fault: string | null;
  shed_reason: string | null;
}

/** The part of `GET /api/status` the dashboard reads. */
export interface BrokerStatus {
  store: StoreStatus;
}

/** `{"type": "store"}` on the WebSocket: the store's counters, while it cannot write and once it can again. */
export interface StoreEvent {
  type: "store";
  store: StoreStatus;
}

/** `{"type": "triage"}` on the WebSocket: someone changed a group's state or deleted something,
 * or the broker's retention deleted `deleted` reports while no report came in. */
export interface TriageEvent {
  type: "triage";
  action: "state" | "report_deleted" | "group_deleted" | "cleared" | "retention";
  fingerprint?: string;
  report_id?: string;
  state?: GroupState;
  mute_until?: number | null;
  mute_remaining?: number | null;
  deleted?: number;
}
