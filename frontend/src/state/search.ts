// The report list's search box over the broker's search: whatever is typed is also sent,
// debounced, to GET /api/reports with its filters, so every stored report can be found, not
// only the loaded ones. "type:KeyError path:/api agent:ID" words become those filters; the
// rest is the text searched anywhere in a report (traceback, locals, request…).
import { effect, signal } from "@preact/signals";
import { searchReports, type ReportSearch } from "../api/client";
import type { ReportSummary } from "../api/types";
import { filterText, searchMatches } from "./reports";

/** Where the broker's search for the search box's text stands. */
type SearchState =
  | { state: "idle" }
  | { state: "loading"; text: string }
  | { state: "done"; text: string; found: number; more: boolean }
  | { state: "failed"; text: string; error: string };

const SEARCH_LIMIT = 200;
const DEBOUNCE_MS = 250;
const FILTERS: Record<string, keyof ReportSearch> = {
  type: "type",
  path: "path",
  agent: "agent",
  app: "app",
  state: "state",
};

const serverSearch = signal<SearchState>({ state: "idle" });
let timer: ReturnType<typeof setTimeout> | undefined;
let latest = 0;

/** The API filters for a search box text: "name:value" words for known names, the rest as q. */
function parseSearch(text: string): ReportSearch {
  const search: ReportSearch = {};
  const words: string[] = [];
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    const match = /^(type|path|agent|app|state):(.+)$/.exec(word);
    const name = match?.[1] === undefined ? undefined : FILTERS[match[1]];
    if (name !== undefined && match?.[2] !== undefined) search[name] = match[2];
    else words.push(word);
  }
  if (words.length > 0) search.q = words.join(" ");
  return search;
}

async function run(text: string): Promise<void> {
  const request = ++latest;
  serverSearch.value = { state: "loading", text };
  try {
    const { reports } = await searchReports(parseSearch(text), SEARCH_LIMIT);
    if (request !== latest) return; // typed on meanwhile
    searchMatches.value = { text, reports };
    serverSearch.value = { state: "done", text, found: reports.length, more: reports.length >= SEARCH_LIMIT };
  } catch (error) {
    if (request !== latest) return;
    searchMatches.value = { text, reports: [] };
    serverSearch.value = { state: "failed", text, error: error instanceof Error ? error.message : String(error) };
  }
}

effect(() => {
  const text = filterText.value.trim();
  clearTimeout(timer);
  if (text === "") {
    latest += 1;
    serverSearch.value = { state: "idle" };
    searchMatches.value = { text: "", reports: [] };
    return;
  }
  serverSearch.value = { state: "loading", text };
  timer = setTimeout(() => void run(text), DEBOUNCE_MS);
});

/** Search every stored report with explicit filters (the groups page's form): a page of
 * `limit`, after `after` (the previous page's last row). */
function searchStoredReports(
  search: ReportSearch,
  limit: number,
  after?: ReportSummary,
): Promise<ReportSummary[]> {
  const cursor = after === undefined ? undefined : { created: after.created, id: after.id };
  return searchReports(search, limit, cursor).then((list) => list.reports);
}

export { searchStoredReports, serverSearch, type SearchState };
