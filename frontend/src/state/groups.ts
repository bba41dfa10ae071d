// The grouped stream, the dashboard's home (#/): one row per fingerprint from GET /api/groups,
// counted in live as reports arrive over the WebSocket, reloaded when anyone triages; the row
// the keyboard selected; and the triage actions, with the dialog some of them ask first.
import { batch, computed, effect, signal } from "@preact/signals";
import {
  ApiError,
  changeGroupState,
  clearStore,
  deleteGroup,
  deleteReport,
  fetchGroups,
  type GroupStateChange,
} from "../api/client";
import type { GroupState, ReportGroup, ReportSummary, TriageEvent } from "../api/types";
import { liveArrivals } from "./reports";
import { route } from "./route";

/** Where the groups stand: never asked for (idle), the first load, loaded, or failed. */
type GroupsLoad =
  | { state: "idle" }
  | { state: "loading" }
  | { state: "done"; groups: ReportGroup[] }
  | { state: "failed"; error: string };

/** Which groups the home view lists. */
type GroupFilter = "all" | "attention" | GroupState;

/** A triage step that asks the user first (a mute's length, or a deletion's confirmation). */
type TriageDialog =
  | { kind: "mute"; fingerprint: string }
  | { kind: "delete-group"; fingerprint: string }
  | { kind: "delete-report"; id: string }
  | { kind: "clear" };

const groupList = signal<GroupsLoad>({ state: "idle" });
const groupFilter = signal<GroupFilter>("all");
/** The fingerprint of the selected row (j/k move it; Enter, r, i, m, o, d act on it), or null. */
const selectedGroup = signal<string | null>(null);
/** The open triage dialog, or null. */
const triageDialog = signal<TriageDialog | null>(null);
/** What the last triage action did, or why it failed (the page's status line). */
const triageStatus = signal<{ text: string; failed: boolean } | null>(null);

/** The groups the home view shows, most recently seen first. */
const shownGroups = computed<ReportGroup[]>(() => {
  const load = groupList.value;
  if (load.state !== "done") return [];
  const filter = groupFilter.value;
  if (filter === "all") return load.groups;
  if (filter === "attention") return load.groups.filter((group) => group.state === "open" || group.state === "regressed");
  return load.groups.filter((group) => group.state === filter);
});

/** The selected group, when it is shown. */
const currentGroup = computed<ReportGroup | null>(
  () => shownGroups.value.find((group) => group.fingerprint === selectedGroup.value) ?? null,
);

function messageOf(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

// Reports counted in: a report is counted once even if events and answers overlap.
let counted = new Set<string>();
// What arrived before the broker's answer is in that answer (a report is stored, then announced).
let seenArrivals = liveArrivals.peek();
let loads = 0;

/** Groups asked for at once: the first page, and each "Show more". */
const GROUP_PAGE = 200;
const MAX_GROUP_PAGE = 1000; // the broker's limit per request
/** How many groups the broker has in the filter's state (its last answer), all pages. */
const groupTotal = signal(0);
/** How many of them the loaded rows hold (the broker's rows, not those counted in live). */
const groupsFetched = signal(0);
const loadingMore = signal(false);

function serverState(): string {
  const filter = groupFilter.peek();
  return filter === "all" ? "" : filter;
}

function cursor(groups: readonly ReportGroup[]): { last_seen: number; fingerprint: string } | undefined {
  const last = groups[groups.length - 1];
  return last === undefined ? undefined : { last_seen: last.last_seen, fingerprint: last.fingerprint };
}

/** The first `wanted` groups in the filter's state, page by page, and how many there are. */
async function fetchFirst(wanted: number): Promise<{ groups: ReportGroup[]; total: number }> {
  const groups: ReportGroup[] = [];
  for (;;) {
    const limit = Math.min(MAX_GROUP_PAGE, wanted - groups.length);
    const page = await fetchGroups(limit, { state: serverState(), after: cursor(groups) });
    groups.push(...page.groups);
    if (page.groups.length < limit || groups.length >= wanted) return { groups, total: page.total };
  }
}

/** Fetch the groups again (the rows stay on screen meanwhile): as many as are loaded (at
 * least a page), or `wanted`. */
async function reloadGroups(wanted?: number): Promise<void> {
  const load = ++loads;
  if (groupList.peek().state !== "done") groupList.value = { state: "loading" };
  try {
    const { groups, total } = await fetchFirst(wanted ?? Math.max(GROUP_PAGE, groupsFetched.peek()));
    if (load !== loads) return; // a newer load is under way
    batch(() => {
      counted = new Set(groups.flatMap((group) => (group.latest === null ? [] : [group.latest.id])));
      seenArrivals = liveArrivals.peek();
      groupList.value = { state: "done", groups };
      groupTotal.value = total;
      groupsFetched.value = groups.length;
    });
  } catch (error) {
    if (load !== loads) return;
    if (groupList.peek().state === "done") triageStatus.value = { text: messageOf(error), failed: true };
    else groupList.value = { state: "failed", error: messageOf(error) };
  }
}

/** The next page of groups in the filter's state, below the loaded ones. */
async function loadMoreGroups(): Promise<void> {
  const load = groupList.peek();
  if (load.state !== "done" || loadingMore.peek()) return;
  const loadsBefore = loads;
  loadingMore.value = true;
  try {
    const page = await fetchGroups(GROUP_PAGE, { state: serverState(), after: cursor(load.groups) });
    const now = groupList.peek();
    if (loads !== loadsBefore || now.state !== "done") return; // reloaded meanwhile
    const known = new Set(now.groups.map((group) => group.fingerprint));
    const added = page.groups.filter((group) => !known.has(group.fingerprint));
    batch(() => {
      for (const group of added) if (group.latest !== null) counted.add(group.latest.id);
      groupList.value = { state: "done", groups: [...now.groups, ...added] };
      groupTotal.value = page.total;
      groupsFetched.value += page.groups.length;
    });
  } catch (error) {
    triageStatus.value = { text: messageOf(error), failed: true };
  } finally {
    loadingMore.value = false;
  }
}

// The filter is the broker's: a resolved group past the newest page is found too.
let filterShown = groupFilter.peek();
effect(() => {
  const filter = groupFilter.value;
  if (filter === filterShown) return;
  filterShown = filter;
  if (groupList.peek().state !== "idle") void reloadGroups(GROUP_PAGE);
});

/** After a reconnect: fetch what was missed, if the groups were ever shown. */
function refreshGroups(): void {
  if (groupList.peek().state !== "idle") void reloadGroups();
}

/** The state a group is in once one more of its errors arrived (as the broker decides it). */
function stateAfterArrival(group: ReportGroup, now: number): Pick<ReportGroup, "state" | "mute_remaining" | "mute_until"> {
  if (group.state === "resolved") return { state: "regressed", mute_remaining: null, mute_until: null };
  if (group.state !== "muted") return { state: group.state, mute_remaining: null, mute_until: null };
  if (group.mute_until !== null && group.mute_until <= now) return { state: "open", mute_remaining: null, mute_until: null };
  if (group.mute_remaining !== null) {
    const remaining = group.mute_remaining - 1;
    return remaining <= 0
      ? { state: "open", mute_remaining: null, mute_until: null }
      : { state: "muted", mute_remaining: remaining, mute_until: group.mute_until };
  }
  return { state: "muted", mute_remaining: null, mute_until: group.mute_until };
}

/** `groups` with the reports in `arrived` counted in (new groups on top), most recent first. */
function countIn(groups: ReportGroup[], arrived: readonly ReportSummary[]): ReportGroup[] {
  const byPrint = new Map(groups.map((group) => [group.fingerprint, group]));
  const now = Date.now() / 1000;
  for (const report of arrived) {
    if (typeof report.fingerprint !== "string" || !report.fingerprint || counted.has(report.id)) continue;
    counted.add(report.id);
    const group = byPrint.get(report.fingerprint);
    if (group === undefined) {
      byPrint.set(report.fingerprint, {
        fingerprint: report.fingerprint,
        state: "open",
        mute_until: null,
        mute_remaining: null,
        state_changed: null,
        count: 1,
        kept: 1,
        first_seen: report.created,
        last_seen: report.created,
        hourly: [...Array<number>(23).fill(0), 1],
        latest: report,
        apps: [report.app],
        workers: [{ agent_id: report.agent_id, pid: report.pid, host: report.host, count: 1 }],
      });
      continue;
    }
    if (group.latest?.id === report.id) continue; // already in the broker's answer
    const known = group.workers.some((worker) => worker.agent_id === report.agent_id);
    byPrint.set(report.fingerprint, {
      ...group,
      ...stateAfterArrival(group, now),
      count: group.count + 1,
      kept: group.kept + 1, // until the next load: retention may have let an older one go
      hourly: [...group.hourly.slice(0, -1), (group.hourly[group.hourly.length - 1] ?? 0) + 1],
      last_seen: Math.max(group.last_seen, report.created),
      first_seen: Math.min(group.first_seen, report.created),
      latest: group.latest === null || report.created >= group.latest.created ? report : group.latest,
      apps: group.apps.includes(report.app) ? group.apps : [...group.apps, report.app],
      workers: known
        ? group.workers.map((worker) =>
            worker.agent_id === report.agent_id ? { ...worker, count: worker.count + 1 } : worker,
          )
        : [...group.workers, { agent_id: report.agent_id, pid: report.pid, host: report.host, count: 1 }],
    });
  }
  return [...byPrint.values()].sort((a, b) => b.last_seen - a.last_seen);
}

effect(() => {
  const arrived = liveArrivals.value;
  const load = groupList.peek();
  if (load.state !== "done" || arrived === seenArrivals) return;
  seenArrivals = arrived;
  groupList.value = { state: "done", groups: countIn(load.groups, arrived) };
});

/** After errors arrived live, the broker's exact counts follow (what its retention kept of a
 * storm, say: counting in adds one kept report per arrival), at most every few seconds. */
const EXACT_AFTER_MS = 2000;
let exactTimer: ReturnType<typeof setTimeout> | undefined;

/** A report arrived live: fetch the exact counts soon, if the home is shown and the broker
 * still connected then (else the page's next showing, or the reconnect, fetches them). */
function exactCountsSoon(connected: () => boolean): void {
  if (groupList.peek().state !== "done") return;
  exactTimer ??= setTimeout(() => {
    exactTimer = undefined;
    if (connected() && route.peek().name === "groups") void reloadGroups();
  }, EXACT_AFTER_MS);
}

/** Change the loaded groups at once (the broker's answer or event follows). */
function updateGroups(change: (groups: ReportGroup[]) => ReportGroup[]): void {
  const load = groupList.peek();
  if (load.state === "done") groupList.value = { state: "done", groups: change(load.groups) };
}

function withState(fingerprint: string, state: GroupState, until: number | null, remaining: number | null): void {
  updateGroups((groups) =>
    groups.map((group) =>
      group.fingerprint === fingerprint ? { ...group, state, mute_until: until, mute_remaining: remaining } : group,
    ),
  );
}

let reloadTimer: ReturnType<typeof setTimeout> | undefined;

/** Someone triaged (this tab or another): show it at once, then the broker's exact counts. */
function applyTriageEvent(event: TriageEvent): void {
  if (groupList.peek().state === "idle") return; // loads when first shown
  const key = event.fingerprint;
  if (event.action === "state" && key !== undefined && event.state !== undefined) {
    withState(key, event.state, event.mute_until ?? null, event.mute_remaining ?? null);
  } else if (event.action === "group_deleted" && key !== undefined) {
    updateGroups((groups) => groups.filter((group) => group.fingerprint !== key));
  } else if (event.action === "cleared") {
    updateGroups(() => []);
  }
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => void reloadGroups(), 100);
}

/** Select the row `step` rows below (positive) or above (negative) the selected one. */
function moveGroupSelection(step: number): void {
  const list = shownGroups.value;
  if (list.length === 0) return;
  const current = list.findIndex((group) => group.fingerprint === selectedGroup.value);
  const next = current < 0 ? (step > 0 ? 0 : list.length - 1) : current + step;
  selectedGroup.value = list[Math.max(0, Math.min(list.length - 1, next))]?.fingerprint ?? null;
}

const DONE: Record<GroupStateChange["state"], string> = {
  resolved: "Resolved: it shows as regressed if the error comes back.",
  open: "Reopened.",
  ignored: "Ignored for good.",
  muted: "Muted.",
};

async function attempt(done: string, action: () => Promise<void>): Promise<string | null> {
  try {
    await action();
  } catch (error) {
    const message = messageOf(error);
    triageStatus.value = { text: message, failed: true };
    return message;
  }
  triageStatus.value = { text: done, failed: false };
  return null;
}

/** Resolve, reopen, ignore or mute a group: null once done, else why not. */
async function setGroupState(fingerprint: string, change: GroupStateChange): Promise<string | null> {
  const failure = await attempt(DONE[change.state], () => changeGroupState(fingerprint, change));
  if (failure === null) {
    const until = "minutes" in change ? Date.now() / 1000 + change.minutes * 60 : null;
    withState(fingerprint, change.state, until, "occurrences" in change ? change.occurrences : null);
  }
  return failure;
}

/** Delete a group, its counts and its reports: null once done, else why not. */
async function removeGroup(fingerprint: string): Promise<string | null> {
  const failure = await attempt("Group deleted.", () => deleteGroup(fingerprint));
  if (failure === null) updateGroups((groups) => groups.filter((group) => group.fingerprint !== fingerprint));
  return failure;
}

/** Delete one report: null once done, else why not. */
function removeReport(id: string): Promise<string | null> {
  return attempt("Report deleted.", () => deleteReport(id));
}

/** Delete every report, group and share link: null once done, else why not. */
async function clearEverything(): Promise<string | null> {
  const failure = await attempt("Everything was deleted.", clearStore);
  if (failure === null) updateGroups(() => []);
  return failure;
}

export {
  applyTriageEvent,
  clearEverything,
  currentGroup,
  exactCountsSoon,
  GROUP_PAGE,
  groupFilter,
  groupList,
  groupsFetched,
  groupTotal,
  loadingMore,
  loadMoreGroups,
  moveGroupSelection,
  refreshGroups,
  reloadGroups,
  removeGroup,
  removeReport,
  selectedGroup,
  setGroupState,
  shownGroups,
  triageDialog,
  triageStatus,
  type GroupFilter,
  type GroupsLoad,
  type TriageDialog,
};
