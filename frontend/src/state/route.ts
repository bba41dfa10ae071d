// The hash route as a signal: #/ (the home: reports grouped by fingerprint; #/groups too),
// #/reports (the flat list of single reports), #/reports/{id},
// #/reports/{id}/frames/{index}, #/reports/{id}/frames/{index}/console/{entry} (an entry of
// that frame's console transcript: the console opens, scrolled to it).
import { signal } from "@preact/signals";

/** Where the user is. `frame` is the frame index to scroll to, `entry` a console entry id. */
type Route =
  | { name: "list" }
  | { name: "groups" }
  | { name: "report"; id: string; frame: number | null; entry?: number | null }
  | { name: "missing"; path: string };

function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "") || "/";
  if (path === "/" || path === "/groups" || path === "/groups/") return { name: "groups" };
  if (path === "/reports" || path === "/reports/") return { name: "list" };
  const match = /^\/reports\/([^/]+)(?:\/frames\/(\d+)(?:\/console\/(\d+))?)?\/?$/.exec(path);
  if (match?.[1] !== undefined) {
    let id: string;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      return { name: "missing", path };
    }
    const frame = match[2] === undefined ? null : Number(match[2]);
    return { name: "report", id, frame, entry: match[3] === undefined ? null : Number(match[3]) };
  }
  return { name: "missing", path };
}

/** The hash of a report page, or of one frame in it, or of an entry of that frame's console. */
function reportHref(id: string, frame?: number, entry?: number): string {
  const base = `#/reports/${encodeURIComponent(id)}`;
  if (frame === undefined) return base;
  return entry === undefined ? `${base}/frames/${frame}` : `${base}/frames/${frame}/console/${entry}`;
}

/** The console entry the address points at in frame `frame` of report `id`, or null. */
function targetEntry(current: Route, id: string, frame: number): number | null {
  if (current.name !== "report" || current.id !== id || current.frame !== frame) return null;
  return current.entry ?? null;
}

const route = signal<Route>(parseRoute(location.hash));

window.addEventListener("hashchange", () => {
  route.value = parseRoute(location.hash);
});

export { parseRoute, reportHref, route, targetEntry, type Route };
