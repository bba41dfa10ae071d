// The home (#/, also #/groups): errors grouped by fingerprint, one row each with its counts,
// last 24 hours, apps and workers and triage state, live over the WebSocket; the triage
// buttons (full sessions only); and a search over every stored report (text, exception type,
// URL path, agent), answered by the broker, not the loaded list.
import { useEffect, useRef, useState } from "preact/hooks";
import type { ReportSearch } from "../api/client";
import type { GroupState, ReportGroup, ReportSummary } from "../api/types";
import { AgentsPanel } from "../components/AgentsPanel";
import { BreakpointsPanel } from "../components/Breakpoints";
import { RelativeTime } from "../components/RelativeTime";
import {
  GROUP_PAGE,
  groupFilter,
  groupList,
  groupsFetched,
  groupTotal,
  loadingMore,
  loadMoreGroups,
  reloadGroups,
  selectedGroup,
  setGroupState,
  shownGroups,
  triageDialog,
  triageStatus,
  type GroupFilter,
} from "../state/groups";
import { markSeen } from "../state/reports";
import { reportHref } from "../state/route";
import { searchStoredReports } from "../state/search";
import { canTriage, sessionReady } from "../state/session";

type Load<T> = { state: "loading" } | { state: "done"; value: T } | { state: "failed"; error: string };

function failure(error: unknown): { state: "failed"; error: string } {
  return { state: "failed", error: error instanceof Error ? error.message : String(error) };
}

function ResultRows({ reports }: { reports: ReportSummary[] }) {
  if (reports.length === 0) return <p class="muted">No stored report matches.</p>;
  return (
    <ul class="search-results" data-testid="search-results">
      {reports.map((report) => (
        <li key={report.id} data-testid="search-result" data-id={report.id}>
          <a href={reportHref(report.id)}>
            <strong>{report.type_name}</strong>
            {report.message ? `: ${report.message}` : ""}
          </a>{" "}
          <span class="muted small">
            {report.url ?? ""} · pid {String(report.pid)} · <RelativeTime at={report.created} />
          </span>
        </li>
      ))}
    </ul>
  );
}

const SEARCH_FIELDS: [keyof ReportSearch, string, string][] = [
  ["q", "Text", "anywhere in the report"],
  ["type", "Exception type", "e.g. KeyError"],
  ["path", "URL path", "starts with, e.g. /api"],
  ["app", "App", "its name, exactly"],
  ["agent", "Agent id", "one worker process"],
];

const STATE_LABELS: Record<GroupState, string> = {
  open: "open",
  regressed: "regressed",
  resolved: "resolved",
  muted: "muted",
  ignored: "ignored",
};

const SEARCH_STATES: [string, string][] = [["", "any state"], ...Object.entries(STATE_LABELS)];

/** The time range choices: seconds back from now ("" is any time). */
const SEARCH_TIMES: [string, string][] = [
  ["", "any time"],
  ["3600", "the last hour"],
  ["86400", "the last 24 hours"],
  ["604800", "the last 7 days"],
  ["2592000", "the last 30 days"],
];

/** Results asked for at once, and by each "More results". */
const SEARCH_PAGE = 50;

/** The `<option>`s of a select: [value, label] pairs. */
function Options({ choices }: { choices: readonly (readonly [string, string])[] }) {
  return (
    <>
      {choices.map(([value, label]) => (
        <option key={value} value={value}>
          {label}
        </option>
      ))}
    </>
  );
}

/** A search's results so far, and whether the broker may have more. */
type Found = { reports: ReportSummary[]; more: boolean };

function Search({ initial }: { initial: ReportSearch }) {
  const [search, setSearch] = useState<ReportSearch>(initial);
  const [within, setWithin] = useState("");
  const [results, setResults] = useState<Load<Found> | null>(null);
  const [asked, setAsked] = useState<ReportSearch>(initial);
  const [paging, setPaging] = useState(false);
  const run = async (query: ReportSearch) => {
    const since = within === "" ? undefined : String(Math.floor(Date.now() / 1000) - Number(within));
    const sent = { ...query, since };
    setAsked(sent);
    setResults({ state: "loading" });
    try {
      const reports = await searchStoredReports(sent, SEARCH_PAGE);
      setResults({ state: "done", value: { reports, more: reports.length >= SEARCH_PAGE } });
    } catch (error) {
      setResults(failure(error));
    }
  };
  const more = async (found: Found) => {
    setPaging(true);
    try {
      const next = await searchStoredReports(asked, SEARCH_PAGE, found.reports[found.reports.length - 1]);
      const known = new Set(found.reports.map((report) => report.id));
      const reports = [...found.reports, ...next.filter((report) => !known.has(report.id))];
      setResults({ state: "done", value: { reports, more: next.length >= SEARCH_PAGE } });
    } catch (error) {
      setResults(failure(error));
    } finally {
      setPaging(false);
    }
  };
  useEffect(() => {
    if (initial.fingerprint) void run(initial);
  }, [initial.fingerprint]);
  return (
    <section class="panel" aria-label="Search reports">
      <h2>Search all stored reports</h2>
      <form
        class="search-form"
        data-testid="search-form"
        onSubmit={(event) => {
          event.preventDefault();
          void run(search);
        }}
      >
        {SEARCH_FIELDS.map(([name, label, hint]) => (
          <label key={name}>
            {label}{" "}
            <input
              name={name}
              value={search[name] ?? ""}
              placeholder={hint}
              maxLength={500}
              onInput={(event) => setSearch({ ...search, [name]: event.currentTarget.value })}
            />
          </label>
        ))}
        <label>
          State{" "}
          <select
            name="state"
            value={search.state ?? ""}
            onChange={(event) => setSearch({ ...search, state: event.currentTarget.value })}
          >
            <Options choices={SEARCH_STATES} />
          </select>
        </label>
        <label>
          Seen in{" "}
          <select name="since" value={within} onChange={(event) => setWithin(event.currentTarget.value)}>
            <Options choices={SEARCH_TIMES} />
          </select>
        </label>
        <button type="submit" class="button primary">
          Search
        </button>
      </form>
      {search.fingerprint && <p class="muted small">Only the group {search.fingerprint}.</p>}
      {results?.state === "loading" && <p class="muted">Searching…</p>}
      {results?.state === "failed" && (
        <p class="error" role="alert">
          {results.error}
        </p>
      )}
      {results?.state === "done" && <ResultRows reports={results.value.reports} />}
      {results?.state === "done" && results.value.reports.length > 0 && (
        <p class="muted small" data-testid="search-count">
          {`${results.value.reports.length.toLocaleString()} ${results.value.reports.length === 1 ? "report" : "reports"}, newest first`}
          {results.value.more ? ". " : "."}
          {results.value.more && (
            <button
              type="button"
              class="button small"
              data-testid="search-more"
              disabled={paging}
              onClick={() => void more(results.value)}
            >
              {paging ? "Loading…" : "More results"}
            </button>
          )}
        </p>
      )}
    </section>
  );
}

/** The last 24 hours, hour by hour, as bars (SVG elements: no HTML strings). */
function Sparkline({ hourly }: { hourly: readonly number[] }) {
  const peak = Math.max(1, ...hourly);
  const total = hourly.reduce((sum, count) => sum + count, 0);
  return (
    <svg class="sparkline" width="72" height="16" viewBox="0 0 72 16" role="img" data-testid="sparkline">
      <title>{`${String(total)} in the last 24 hours`}</title>
      {hourly.map((count, hour) => {
        const height = count === 0 ? 0 : Math.max(1, Math.round((count / peak) * 16));
        return <rect key={hour} x={hour * 3} y={16 - height} width="2" height={height} />;
      })}
    </svg>
  );
}

const FILTERS: [GroupFilter, string][] = [
  ["all", "All errors"],
  ["attention", "Open and regressed"],
  ["regressed", "Regressed"],
  ["resolved", "Resolved"],
  ["muted", "Muted"],
  ["ignored", "Ignored"],
];

/** When a mute ends: at a time, or after N more occurrences. */
function MuteEnd({ group }: { group: ReportGroup }) {
  if (group.state !== "muted") return null;
  if (group.mute_remaining !== null) {
    return <span class="muted small" data-testid="group-mute">{` for ${String(group.mute_remaining)} more`}</span>;
  }
  if (group.mute_until !== null) {
    return (
      <span class="muted small" data-testid="group-mute">
        {" until "}
        {new Date(group.mute_until * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
      </span>
    );
  }
  return null;
}

/** The triage buttons of one group (shortcuts in their titles). */
function GroupActions({ group }: { group: ReportGroup }) {
  const { fingerprint, state } = group;
  const change = (next: "resolved" | "open" | "ignored") => {
    selectedGroup.value = fingerprint;
    void setGroupState(fingerprint, { state: next });
  };
  const active = state === "open" || state === "regressed";
  return (
    <div class="group-actions">
      {state !== "resolved" ? (
        <button type="button" class="button small" title="Resolve (r)" data-testid="group-resolve" onClick={() => change("resolved")}>
          Resolve
        </button>
      ) : null}
      {!active ? (
        <button type="button" class="button small" title="Reopen (o)" data-testid="group-reopen" onClick={() => change("open")}>
          Reopen
        </button>
      ) : null}
      {state !== "ignored" ? (
        <button type="button" class="button small" title="Ignore for good (i)" data-testid="group-ignore" onClick={() => change("ignored")}>
          Ignore
        </button>
      ) : null}
      {state !== "muted" ? (
        <button
          type="button"
          class="button small"
          title="Mute for a time or N more occurrences (m)"
          aria-haspopup="dialog"
          data-testid="group-mute-button"
          onClick={() => {
            selectedGroup.value = fingerprint;
            triageDialog.value = { kind: "mute", fingerprint };
          }}
        >
          Mute…
        </button>
      ) : null}
      <button
        type="button"
        class="button small danger"
        title="Delete the group and its reports (d)"
        aria-haspopup="dialog"
        data-testid="group-delete"
        onClick={() => {
          selectedGroup.value = fingerprint;
          triageDialog.value = { kind: "delete-group", fingerprint };
        }}
      >
        Delete…
      </button>
    </div>
  );
}

interface RowProps {
  group: ReportGroup;
  selected: boolean;
  triage: boolean;
  onPick: (fingerprint: string) => void;
}

function GroupRow({ group, selected, triage, onPick }: RowProps) {
  const classes = ["group-row", `state-${group.state}`];
  if (selected) classes.push("selected");
  const summary = group.latest === null ? "" : `${group.latest.type_name}${group.latest.message ? `: ${group.latest.message}` : ""}`;
  return (
    <tr
      class={classes.join(" ")}
      data-testid="group"
      data-fingerprint={group.fingerprint}
      data-state={group.state}
      onFocusIn={() => {
        selectedGroup.value = group.fingerprint;
      }}
    >
      <td class="group-error">
        {group.state === "regressed" && (
          <span class="badge regressed" data-testid="regressed-badge" title="Resolved, then it happened again">
            Regressed
          </span>
        )}
        {group.latest === null ? (
          <span class="muted">no report kept</span>
        ) : (
          <a href={reportHref(group.latest.id)} data-testid="group-open" title="Open the newest report (Enter)">
            <strong>{group.latest.type_name}</strong>
            {group.latest.message ? `: ${group.latest.message.split("\n", 1)[0] ?? ""}` : ""}
          </a>
        )}{" "}
        <button
          type="button"
          class="button small"
          aria-label={`All ${String(group.kept)} stored reports of ${summary || "this group"}`}
          onClick={() => onPick(group.fingerprint)}
        >
          All {String(group.kept)}
        </button>
      </td>
      <td>
        <span class={`state-badge state-${group.state}`} data-testid="group-state">
          {STATE_LABELS[group.state]}
        </span>
        <MuteEnd group={group} />
      </td>
      <td class="nowrap">
        <strong data-testid="group-count">{String(group.count)}</strong>
        <br />
        <span class="muted small" data-testid="group-kept">
          {`${String(group.count)} seen, ${String(group.kept)} kept`}
        </span>
      </td>
      <td>
        <Sparkline hourly={group.hourly} />
      </td>
      <td class="nowrap">
        <RelativeTime at={group.first_seen} />
      </td>
      <td class="nowrap">
        <RelativeTime at={group.last_seen} />
      </td>
      <td class="small">
        {[group.apps.join(", "), group.workers.map((worker) => `pid ${worker.pid}@${worker.host} (${worker.count} kept)`).join(", ")]
          .filter(Boolean)
          .join(" · ")}
      </td>
      {triage && (
        <td>
          <GroupActions group={group} />
        </td>
      )}
    </tr>
  );
}

/** The rows; a row's "All N" button makes the search below list that group's stored reports. */
function GroupTable({ groups, onPick }: { groups: ReportGroup[]; onPick: (fingerprint: string) => void }) {
  const triage = canTriage.value;
  const selected = selectedGroup.value;
  const table = useRef<HTMLTableElement>(null);
  useEffect(() => {
    // The focus follows the selection (j/k), unless it is in that row already (a button).
    // Checked against the signal: an older render's effect must not take the focus (its
    // row's focusin would select that row again).
    if (selected === null || selectedGroup.peek() !== selected) return;
    const row = table.current?.querySelector<HTMLElement>(`[data-fingerprint="${CSS.escape(selected)}"]`);
    if (row == null || row.contains(document.activeElement)) return;
    row.querySelector<HTMLElement>("[data-testid=group-open]")?.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }, [selected]);
  if (groups.length === 0) {
    const load = groupList.value;
    const any = groupFilter.value !== "all" || (load.state === "done" && load.groups.length > 0);
    return (
      <p class="muted" data-testid="no-groups">
        {any ? "No error is in this state." : "No errors yet. When an app with the agent raises, it appears here at once."}
      </p>
    );
  }
  return (
    <table ref={table} class="groups" data-testid="groups" aria-label="Errors grouped by fingerprint, most recently seen first">
      <thead>
        <tr>
          <th scope="col">Error</th>
          <th scope="col">State</th>
          <th scope="col">Count</th>
          <th scope="col">24 h</th>
          <th scope="col">First seen</th>
          <th scope="col">Last seen</th>
          <th scope="col">Apps and workers</th>
          {triage && <th scope="col">Triage</th>}
        </tr>
      </thead>
      <tbody>
        {groups.map((group) => (
          <GroupRow
            key={group.fingerprint}
            group={group}
            selected={group.fingerprint === selected}
            triage={triage}
            onPick={onPick}
          />
        ))}
      </tbody>
    </table>
  );
}

/** Clears the title's "new reports" count while the page is on screen. */
function useSeenWhileVisible(): void {
  useEffect(() => {
    const update = () => {
      if (document.visibilityState === "visible") markSeen();
    };
    update();
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
}

/** Below the rows: how many groups the broker has beyond the loaded ones, and a button for the next page. */
function MoreGroups() {
  const fetched = groupsFetched.value;
  const total = groupTotal.value;
  if (total <= fetched) return null;
  const next = Math.min(GROUP_PAGE, total - fetched);
  return (
    <p class="muted small groups-more" data-testid="groups-more-note">
      {`The ${fetched.toLocaleString()} most recently seen of ${total.toLocaleString()} groups. `}
      <button
        type="button"
        class="button small"
        data-testid="groups-more"
        disabled={loadingMore.value}
        onClick={() => void loadMoreGroups()}
      >
        {loadingMore.value ? "Loading…" : `Show ${next.toLocaleString()} more`}
      </button>
    </p>
  );
}

/** The groups page. */
function GroupsView() {
  const [picked, setPicked] = useState<string>("");
  useSeenWhileVisible();
  const ready = sessionReady.value;
  useEffect(() => {
    if (ready) void reloadGroups(); // fresh counts each time the page is shown; live from then on
  }, [ready]);
  const load = groupList.value;
  const status = triageStatus.value;
  const triage = canTriage.value;
  const total = load.state === "done" ? load.groups.length : 0;
  return (
    <div class="list-layout">
      <article class="groups-page">
        <div class="groups-head">
          <h1>Errors</h1>
          <p class="muted small">
            Grouped by exception type and the app frames they passed (file and function).{" "}
            <a href="#/reports" data-testid="all-reports-link">
              Every single report, newest first →
            </a>
          </p>
          <div class="groups-tools">
            <label>
              Show{" "}
              <select
                data-testid="group-filter"
                value={groupFilter.value}
                onChange={(event) => {
                  groupFilter.value = event.currentTarget.value as GroupFilter;
                }}
              >
                <Options choices={FILTERS} />
              </select>
            </label>
            {triage ? (
              <button
                type="button"
                class="button small danger"
                aria-haspopup="dialog"
                data-testid="clear-all"
                disabled={total === 0}
                onClick={() => {
                  triageDialog.value = { kind: "clear" };
                }}
              >
                Clear everything…
              </button>
            ) : (
              load.state === "done" && (
                <span class="muted small" data-testid="view-only-note">
                  View-only session: resolving, muting and deleting need the full token.
                </span>
              )
            )}
          </div>
        </div>
        <p class={status?.failed ? "error small" : "muted small"} role="status" data-testid="triage-status">
          {status?.text ?? ""}
        </p>
        {(load.state === "loading" || load.state === "idle") && <p class="muted">Loading…</p>}
        {load.state === "failed" && (
          <p class="error" role="alert">
            {load.error}
          </p>
        )}
        {load.state === "done" && <GroupTable groups={shownGroups.value} onPick={setPicked} />}
        {load.state === "done" && <MoreGroups />}
        <Search key={picked} initial={{ fingerprint: picked }} />
      </article>
      <AgentsPanel />
      <BreakpointsPanel />
    </div>
  );
}

export { GroupsView };
