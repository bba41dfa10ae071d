// #/groups: repeated errors grouped by fingerprint, and a search over every stored report
// (text, exception type, URL path, agent), both answered by the broker, not the loaded list.
// Reports arriving over the WebSocket update the groups in place (count, last seen, workers).
import { useEffect, useRef, useState } from "preact/hooks";
import type { ReportSearch } from "../api/client";
import type { ReportGroup, ReportSummary } from "../api/types";
import { RelativeTime } from "../components/RelativeTime";
import { liveArrivals } from "../state/reports";
import { loadGroups, searchStoredReports } from "../state/search";
import { connection } from "../state/session";
import { reportHref } from "../state/route";

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

const FIELDS: [keyof ReportSearch, string, string][] = [
  ["q", "Text", "anywhere in the report"],
  ["type", "Exception type", "e.g. KeyError"],
  ["path", "URL path", "starts with, e.g. /api"],
  ["agent", "Agent id", "one worker process"],
];

function Search({ initial }: { initial: ReportSearch }) {
  const [search, setSearch] = useState<ReportSearch>(initial);
  const [results, setResults] = useState<Load<ReportSummary[]> | null>(null);
  const run = async (query: ReportSearch) => {
    setResults({ state: "loading" });
    try {
      setResults({ state: "done", value: await searchStoredReports(query) });
    } catch (error) {
      setResults(failure(error));
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
        {FIELDS.map(([name, label, hint]) => (
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
      {results?.state === "done" && <ResultRows reports={results.value} />}
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

function GroupTable({ groups, onPick }: { groups: ReportGroup[]; onPick: (fingerprint: string) => void }) {
  if (groups.length === 0) return <p class="muted">No reports yet.</p>;
  return (
    <table class="groups" data-testid="groups">
      <thead>
        <tr>
          <th scope="col">Error</th>
          <th scope="col">State</th>
          <th scope="col">Seen / kept</th>
          <th scope="col">24 h</th>
          <th scope="col">First seen</th>
          <th scope="col">Last seen</th>
          <th scope="col">Apps and workers</th>
        </tr>
      </thead>
      <tbody>
        {groups.map((group) => (
          <tr key={group.fingerprint} data-testid="group" data-fingerprint={group.fingerprint}>
            <td>
              {group.latest === null ? (
                <span class="muted">no report kept</span>
              ) : (
                <a href={reportHref(group.latest.id)}>
                  <strong>{group.latest.type_name}</strong>
                  {group.latest.message ? `: ${group.latest.message}` : ""}
                </a>
              )}{" "}
              <button type="button" class="button small" onClick={() => onPick(group.fingerprint)}>
                All {String(group.kept)}
              </button>
            </td>
            <td data-testid="group-state">{group.state}</td>
            <td data-testid="group-count" title={`${String(group.count)} seen, ${String(group.kept)} kept`}>
              {String(group.count)}
              {group.kept < group.count ? <span class="muted small">{` (${String(group.kept)} kept)`}</span> : null}
            </td>
            <td>
              <Sparkline hourly={group.hourly} />
            </td>
            <td>
              <RelativeTime at={group.first_seen} />
            </td>
            <td>
              <RelativeTime at={group.last_seen} />
            </td>
            <td class="small">
              {[group.apps.join(", "), group.workers.map((worker) => `pid ${worker.pid}@${worker.host} (${worker.count})`).join(", ")]
                .filter(Boolean)
                .join(" · ")}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** `groups` with the reports in `arrived` counted in (new groups on top), most recent first. */
function countIn(groups: ReportGroup[], arrived: readonly ReportSummary[], counted: Set<string>): ReportGroup[] {
  const byPrint = new Map(groups.map((group) => [group.fingerprint, group]));
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
      // The broker reopens a resolved group as regressed when its error comes back.
      state: group.state === "resolved" ? "regressed" : group.state,
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

/** The groups page. */
function GroupsView() {
  const [groups, setGroups] = useState<Load<ReportGroup[]>>({ state: "loading" });
  const [picked, setPicked] = useState<string>("");
  // Reports already counted: a report is counted once even if events and answers overlap.
  const counted = useRef(new Set<string>());
  // What arrived before the broker's answer is in that answer (it is stored before announced).
  const seenArrivals = useRef(liveArrivals.value);
  // The stream's state when last rendered: back to "open" after a drop, events may be lost.
  const wasOpen = useRef(connection.value.state === "open");
  const open = connection.value.state === "open";
  useEffect(() => {
    const reconnected = open && !wasOpen.current;
    wasOpen.current = open;
    if (!reconnected && groups.state !== "loading") return;
    loadGroups().then(
      (groups) => {
        counted.current = new Set(groups.flatMap((group) => (group.latest === null ? [] : [group.latest.id])));
        seenArrivals.current = liveArrivals.value;
        setGroups({ state: "done", value: groups });
      },
      (error: unknown) => setGroups(failure(error)),
    );
  }, [open]);
  const arrived = liveArrivals.value;
  useEffect(() => {
    if (groups.state !== "done" || arrived === seenArrivals.current) return;
    seenArrivals.current = arrived;
    setGroups({ state: "done", value: countIn(groups.value, arrived, counted.current) });
  }, [arrived, groups]);
  return (
    <article class="groups-page">
      <p class="breadcrumb">
        <a href="#/">← All reports</a>
      </p>
      <h1>Repeated errors</h1>
      <p class="muted small">Grouped by exception type and the app frames they passed (file and function).</p>
      {groups.state === "loading" && <p class="muted">Loading…</p>}
      {groups.state === "failed" && (
        <p class="error" role="alert">
          {groups.error}
        </p>
      )}
      {groups.state === "done" && <GroupTable groups={groups.value} onPick={setPicked} />}
      <Search key={picked} initial={{ fingerprint: picked }} />
    </article>
  );
}

export { GroupsView };
