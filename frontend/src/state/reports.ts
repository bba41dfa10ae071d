// Shared data: the report list, the agents, and the report being viewed. HTTP loads fill
// them; WebSocket events keep them live.
import { batch, computed, signal } from "@preact/signals";
import { ApiError, fetchAgents, fetchReport, fetchReports, resumeReport } from "../api/client";
import type { Agent, Report, ReportSummary, ServerEvent, TriageEvent } from "../api/types";
import { notifyArrived } from "./notify";
import { route } from "./route";

/** The first page of the list, and each older page fetched while scrolling down. */
const PAGE_SIZE = 100;
const OLDER_PAGE_SIZE = 1000;

/** All known report summaries, newest first. */
const reports = signal<ReportSummary[]>([]);
/** False until the first list answer (or error) arrived. */
const reportsLoaded = signal(false);
/** Why the list could not be loaded, or null. */
const reportsError = signal<string | null>(null);
/** Whether the broker may have older reports than the ones listed. */
const hasOlder = signal(false);
/** Reports that arrived live while the list was not on screen (hidden tab or another page). */
const unseen = signal(0);
/** The last burst of reports that arrived live, newest first (the groups view counts them). */
const liveArrivals = signal<readonly ReportSummary[]>([]);
/** Ids of reports that arrived live (the list marks them as new). */
const freshIds = signal<ReadonlySet<string>>(new Set());

/** Agents, live ones first. */
const agents = signal<Agent[]>([]);
const agentsError = signal<string | null>(null);

/** The report page's state: its id, and the report or the error once loaded. */
interface Selection {
  id: string;
  report: Report | null;
  error: string | null;
}
const selected = signal<Selection | null>(null);

function messageOf(error: unknown): string {
  if (error instanceof ApiError || error instanceof Error) return error.message;
  return String(error);
}

function newestFirst(list: ReportSummary[]): ReportSummary[] {
  return list.sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1));
}

/** The search box's text: the list shows the reports matching every word of it. */
const filterText = signal("");

const searchable = new WeakMap<ReportSummary, string>();

function searchableText(report: ReportSummary): string {
  let text = searchable.get(report);
  if (text === undefined) {
    const fields = [report.type_name, report.message, report.app, report.host, report.url ?? "", String(report.pid)];
    text = [...fields, report.id].join("\n").toLowerCase();
    searchable.set(report, text);
  }
  return text;
}

/** What the broker's search (GET /api/reports filters) found for the search box's `text`. */
const searchMatches = signal<{ text: string; reports: ReportSummary[] }>({ text: "", reports: [] });

/** The reports the list shows: all of them, or those matching the search box, loaded or found. */
const visibleReports = computed<ReportSummary[]>(() => {
  const words = filterText.value.toLowerCase().split(/\s+/).filter(Boolean);
  const all = reports.value;
  if (words.length === 0) return all;
  const local = all.filter((report) => {
    const text = searchableText(report);
    return words.every((word) => text.includes(word));
  });
  const found = searchMatches.value;
  if (found.text !== filterText.value.trim() || found.reports.length === 0) return local;
  const listed = new Set(local.map((report) => report.id));
  const extra = found.reports.filter((report) => !listed.has(report.id));
  return extra.length === 0 ? local : newestFirst([...local, ...extra]);
});

function mergeReports(incoming: ReportSummary[]): void {
  const byId = new Map(reports.value.map((item) => [item.id, item]));
  for (const item of incoming) byId.set(item.id, item);
  reports.value = newestFirst([...byId.values()]);
}

/** Fetch the newest page of reports and merge it into the list. */
async function loadReports(): Promise<void> {
  try {
    const answer = await fetchReports(PAGE_SIZE);
    batch(() => {
      mergeReports(answer.reports);
      if (!reportsLoaded.value) hasOlder.value = answer.reports.length >= PAGE_SIZE;
      reportsError.value = null;
      reportsLoaded.value = true;
    });
  } catch (error) {
    batch(() => {
      reportsError.value = messageOf(error);
      reportsLoaded.value = true;
    });
  }
}

let loadingOlder: Promise<void> | null = null;

/** Fetch the page of reports older than the oldest one listed (one request at a time). */
function loadOlderReports(): Promise<void> {
  loadingOlder ??= fetchOlder().finally(() => {
    loadingOlder = null;
  });
  return loadingOlder;
}

async function fetchOlder(): Promise<void> {
  const oldest = reports.value[reports.value.length - 1];
  if (oldest === undefined) return;
  try {
    const answer = await fetchReports(OLDER_PAGE_SIZE, oldest.created);
    batch(() => {
      mergeReports(answer.reports);
      hasOlder.value = answer.reports.length >= OLDER_PAGE_SIZE;
      reportsError.value = null;
    });
  } catch (error) {
    reportsError.value = messageOf(error);
  }
}

function aliveFirst(list: Agent[]): Agent[] {
  return list.sort((a, b) => Number(b.alive) - Number(a.alive) || b.last_seen - a.last_seen);
}

/** Fetch the agents list. */
async function loadAgents(): Promise<void> {
  try {
    const answer = await fetchAgents();
    batch(() => {
      agents.value = aliveFirst([...answer.agents]);
      agentsError.value = null;
    });
  } catch (error) {
    agentsError.value = messageOf(error);
  }
}

/** Show report `id`: fetch it unless it is already the one shown. */
async function selectReport(id: string): Promise<void> {
  const current = selected.value;
  if (current !== null && current.id === id && current.error === null) return;
  selected.value = { id, report: null, error: null };
  await refreshSelected();
}

/** Fetch the shown report again (after a reconnect, or on the user's request). */
async function refreshSelected(): Promise<void> {
  const id = selected.value?.id;
  if (id === undefined) return;
  let next: Selection;
  try {
    next = { id, report: await fetchReport(id), error: null };
  } catch (error) {
    next = { id, report: selected.value?.report ?? null, error: messageOf(error) };
  }
  if (selected.value?.id === id) selected.value = next;
}

/** Note that the user has seen the list (resets the count in the title). */
function markSeen(): void {
  unseen.value = 0;
}

function onAgent(agent: Agent): void {
  const others = agents.value.filter((item) => item.agent_id !== agent.agent_id);
  agents.value = aliveFirst([agent, ...others]);
  const current = selected.value;
  if (current?.report && current.report.agent_id === agent.agent_id) {
    if (current.report.agent_alive !== agent.alive) {
      selected.value = { ...current, report: { ...current.report, agent_alive: agent.alive } };
    }
  }
}

/** Reports received but not yet shown: a burst of errors is applied in one go. */
let pending: ReportSummary[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;
const FLUSH_DELAY_MS = 50;
/** How many live arrivals the list remembers as "fresh" (for their highlight). */
const MAX_FRESH = 200;

function flushPending(): void {
  flushTimer = undefined;
  const list = reports.value;
  const known = new Set(list.map((item) => item.id));
  const arrived: ReportSummary[] = [];
  for (const item of pending) {
    if (known.has(item.id)) continue; // also a repeat within the burst
    known.add(item.id);
    arrived.push(item);
  }
  newestFirst(arrived);
  pending = [];
  if (arrived.length === 0) return;
  batch(() => {
    const newest = list[0];
    const oldestArrived = arrived[arrived.length - 1];
    // The usual case, new errors, go on top without re-sorting thousands of reports.
    if (newest === undefined || (oldestArrived !== undefined && oldestArrived.created >= newest.created)) {
      reports.value = [...arrived, ...list];
    } else {
      mergeReports(arrived);
    }
    const fresh = [...freshIds.value, ...arrived.map((item) => item.id)];
    freshIds.value = new Set(fresh.slice(-MAX_FRESH));
    liveArrivals.value = arrived;
    const listed = route.value.name === "list" || route.value.name === "groups";
    if (document.visibilityState !== "visible" || !listed) unseen.value += arrived.length;
  });
  notifyArrived(arrived);
}

function onReport(report: ReportSummary): void {
  pending.push(report);
  flushTimer ??= setTimeout(flushPending, FLUSH_DELAY_MS);
}

/** A paused thread went on: the open report stops offering Continue, for every viewer. */
function onResumed(reportId: string): void {
  const current = selected.value;
  if (current === null || current.report === null || current.report.id !== reportId) return;
  selected.value = { ...current, report: { ...current.report, resumable: false } };
}

/** Apply one WebSocket event to the shared state. */
function applyEvent(event: ServerEvent): void {
  if (event.type === "report") onReport(event.report);
  else if (event.type === "resumed") onResumed(event.report_id);
  else onAgent(event.agent);
}

/** Someone deleted reports (one, a group's, or all): they leave the list, and the report page
 * says so if it showed one of them. */
function applyTriageToReports(event: TriageEvent): void {
  let gone: (report: ReportSummary) => boolean;
  if (event.action === "report_deleted") gone = (report) => report.id === event.report_id;
  else if (event.action === "group_deleted") gone = (report) => report.fingerprint === event.fingerprint;
  else if (event.action === "cleared") gone = () => true;
  else return;
  const goneIds = new Set(reports.value.filter(gone).map((report) => report.id));
  if (event.report_id !== undefined) goneIds.add(event.report_id);
  batch(() => {
    reports.value = reports.value.filter((report) => !goneIds.has(report.id));
    const current = selected.value;
    if (current?.report && (event.action === "cleared" || goneIds.has(current.id))) {
      selected.value = { id: current.id, report: null, error: "This report was deleted." };
    }
  });
}

/** The thread paused at breakpoint() in this report goes on (the "resumed" event follows). */
function resumeThread(reportId: string): Promise<void> {
  return resumeReport(reportId);
}

export {
  agents,
  agentsError,
  applyEvent,
  applyTriageToReports,
  filterText,
  freshIds,
  hasOlder,
  liveArrivals,
  loadAgents,
  loadOlderReports,
  loadReports,
  markSeen,
  refreshSelected,
  reports,
  reportsError,
  reportsLoaded,
  resumeThread,
  searchMatches,
  selectReport,
  selected,
  unseen,
  visibleReports,
  type Selection,
};
