// The report list (#/): newest first, live from the WebSocket, searchable (the loaded reports
// at once, every stored one through the broker's search), virtualized (only the rows on screen
// are in the DOM) and loading older reports as the user scrolls down.
import { useEffect, useRef } from "preact/hooks";
import type { ReportSummary } from "../api/types";
import { AgentsPanel } from "../components/AgentsPanel";
import { BreakpointsPanel } from "../components/Breakpoints";
import { RelativeTime } from "../components/RelativeTime";
import { SEARCH_ID, searchFocusRequest } from "../components/Shortcuts";
import { VirtualList } from "../components/VirtualList";
import { moveSelection, positionOf, selectedId } from "../state/navigation";
import {
  filterText,
  freshIds,
  hasOlder,
  loadOlderReports,
  markSeen,
  reports,
  reportsError,
  reportsLoaded,
  visibleReports,
} from "../state/reports";
import { reportHref } from "../state/route";
import { serverSearch } from "../state/search";

const MESSAGE_LIMIT = 160;
/** Must match `.report-row { height }` in app.css. */
const ROW_HEIGHT = 62;

function truncate(text: string, limit: number): string {
  const firstLine = text.split("\n", 1)[0] ?? "";
  return firstLine.length > limit || firstLine !== text ? `${firstLine.slice(0, limit).trimEnd()}…` : text;
}

interface RowProps {
  report: ReportSummary;
  index: number;
  total: number;
  fresh: boolean;
  selected: boolean;
}

function ReportRow({ report, index, total, fresh, selected }: RowProps) {
  const classes = ["report-row"];
  if (fresh) classes.push("fresh");
  if (selected) classes.push("selected");
  return (
    <li
      class={classes.join(" ")}
      data-testid="report-row"
      data-id={report.id}
      data-index={index}
      aria-posinset={index + 1}
      aria-setsize={total}
    >
      <a href={reportHref(report.id)} aria-current={selected ? "true" : undefined}>
        <span class="report-headline">
          <span class="exception-type">{report.type_name}</span>
          {report.message && <span class="report-message">{truncate(report.message, MESSAGE_LIMIT)}</span>}
        </span>
        <span class="report-meta">
          <span>{report.app || "(unnamed app)"}</span>
          <span>pid {String(report.pid)}</span>
          <span>{report.host}</span>
          {report.url && <span class="report-url">{report.url}</span>}
        </span>
        <span class="report-time">
          <RelativeTime at={report.created} />
        </span>
      </a>
    </li>
  );
}

/** Clears the title's "new reports" count when the list comes on screen. */
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

let handledFocusRequest = 0;

function SearchBox() {
  const input = useRef<HTMLInputElement>(null);
  const request = searchFocusRequest.value;
  useEffect(() => {
    if (request === handledFocusRequest) return;
    handledFocusRequest = request;
    input.current?.focus();
    input.current?.select();
  }, [request]);
  return (
    <div class="search">
      <label for={SEARCH_ID} class="visually-hidden">
        Search reports
      </label>
      <input
        ref={input}
        id={SEARCH_ID}
        data-testid="report-search"
        type="search"
        placeholder="Search every report: text, type:KeyError, path:/api, app:NAME, state:open, agent:ID  ( / )"
        maxLength={500}
        autocomplete="off"
        spellcheck={false}
        value={filterText.value}
        onInput={(event) => {
          filterText.value = event.currentTarget.value;
        }}
        onKeyDown={(event) => {
          if (event.key === "Escape") {
            event.preventDefault();
            if (filterText.value) filterText.value = "";
            else event.currentTarget.blur();
          } else if (event.key === "ArrowDown" || event.key === "Enter") {
            event.preventDefault();
            selectedId.value = null;
            moveSelection(1);
          }
        }}
      />
    </div>
  );
}

function CountBadge() {
  const shown = visibleReports.value.length;
  const total = reports.value.length;
  const more = hasOlder.value ? "+" : "";
  const text = filterText.value.trim() ? `${shown} of ${total}${more}` : `${total}${more}`;
  return (
    <span class="count" data-testid="report-count" title={more ? "More on the broker: they load as you scroll" : undefined}>
      {text}
    </span>
  );
}

/** How the broker's search for the box's text is going (loading, found, failed). */
function SearchStatus({ shown }: { shown: number }) {
  const search = serverSearch.value;
  if (search.state === "idle") return null;
  let text: string;
  if (search.state === "loading") text = "Searching every stored report…";
  else if (search.state === "failed") text = `The broker's search failed (${search.error}); only loaded reports are shown.`;
  else if (shown === 0) text = `No report matches “${search.text}”, loaded or stored.`;
  else text = `Searched every stored report: ${search.found}${search.more ? "+" : ""} found on the broker.`;
  return (
    <p
      class={search.state === "failed" ? "error small" : "muted small"}
      role={search.state === "failed" ? "alert" : "status"}
      data-testid="search-status"
      data-state={search.state}
    >
      {text}
    </p>
  );
}

/** The list page. */
function ReportList() {
  useSeenWhileVisible();
  const list = visibleReports.value;
  const fresh = freshIds.value;
  const selected = selectedId.value;
  const filtering = filterText.value.trim() !== "";
  return (
    <div class="list-layout">
      <section class="panel reports" aria-labelledby="reports-title">
        <div class="reports-head">
          <h1 id="reports-title">
            Reports <CountBadge />
          </h1>
          <SearchBox />
        </div>
        {filtering && <SearchStatus shown={list.length} />}
        {reportsError.value !== null && (
          <p class="error" role="alert">
            {reportsError.value}
          </p>
        )}
        {!reportsLoaded.value ? (
          <p class="muted">Loading…</p>
        ) : reports.value.length === 0 ? (
          <p class="muted">No errors yet. When an app with the agent raises, its report appears here at once.</p>
        ) : list.length === 0 && filtering ? (
          <p class="muted" data-testid="no-match">
            {serverSearch.value.state === "loading" ? "Nothing loaded matches; searching the broker…" : "No match."}
          </p>
        ) : (
          <VirtualList
            class="report-list"
            label={filtering ? "Matching reports" : "Reports, newest first"}
            items={list}
            rowHeight={ROW_HEIGHT}
            activeIndex={positionOf(selected)}
            activeKey={selected}
            onNearEnd={hasOlder.value ? () => void loadOlderReports() : undefined}
            onFocusRow={(index) => {
              selectedId.value = list[index]?.id ?? null;
            }}
            renderRow={(report, index) => (
              <ReportRow
                key={report.id}
                report={report}
                index={index}
                total={list.length}
                fresh={fresh.has(report.id)}
                selected={report.id === selected}
              />
            )}
          />
        )}
        {hasOlder.value && reports.value.length > 0 && (
          <p class="muted small list-end" role="status">
            Older reports load as you scroll.
          </p>
        )}
      </section>
      <AgentsPanel />
      <BreakpointsPanel />
    </div>
  );
}

export { ReportList };
