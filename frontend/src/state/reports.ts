// Shared data: the report list, the agents, and the report being viewed. HTTP loads fill
// them; WebSocket events keep them live.
import { batch, signal } from "@preact/signals";
import { ApiError, fetchAgents, fetchReport, fetchReports } from "../api/client";
import type { Agent, Report, ReportSummary, ServerEvent } from "../api/types";
import { route } from "./route";

const PAGE_SIZE = 100;

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

/** Fetch the page of reports older than the oldest one listed. */
async function loadOlderReports(): Promise<void> {
  const oldest = reports.value[reports.value.length - 1];
  if (oldest === undefined) return;
  try {
    const answer = await fetchReports(PAGE_SIZE, oldest.created);
    batch(() => {
      mergeReports(answer.reports);
      hasOlder.value = answer.reports.length >= PAGE_SIZE;
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

function onReport(report: ReportSummary): void {
  if (reports.value.some((item) => item.id === report.id)) return;
  batch(() => {
    mergeReports([report]);
    freshIds.value = new Set([...freshIds.value, report.id]);
    if (document.visibilityState !== "visible" || route.value.name !== "list") unseen.value += 1;
  });
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

export {
  agents,
  agentsError,
  applyEvent,
  freshIds,
  hasOlder,
  loadAgents,
  loadOlderReports,
  loadReports,
  markSeen,
  refreshSelected,
  reports,
  reportsError,
  reportsLoaded,
  selectReport,
  selected,
  unseen,
  type Selection,
};
