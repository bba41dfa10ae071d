// The hash route as a signal: #/ (report list), #/groups, #/reports/{id},
// #/reports/{id}/frames/{index}.
import { signal } from "@preact/signals";

/** Where the user is. `frame` is the frame index to scroll to, or null. */
type Route =
  | { name: "list" }
  | { name: "groups" }
  | { name: "report"; id: string; frame: number | null }
  | { name: "missing"; path: string };

function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "") || "/";
  if (path === "/") return { name: "list" };
  if (path === "/groups" || path === "/groups/") return { name: "groups" };
  const match = /^\/reports\/([^/]+)(?:\/frames\/(\d+))?\/?$/.exec(path);
  if (match?.[1] !== undefined) {
    let id: string;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      return { name: "missing", path };
    }
    return { name: "report", id, frame: match[2] === undefined ? null : Number(match[2]) };
  }
  return { name: "missing", path };
}

/** The hash of a report page, or of one frame in it. */
function reportHref(id: string, frame?: number): string {
  const base = `#/reports/${encodeURIComponent(id)}`;
  return frame === undefined ? base : `${base}/frames/${frame}`;
}

const route = signal<Route>(parseRoute(location.hash));

window.addEventListener("hashchange", () => {
  route.value = parseRoute(location.hash);
});

export { parseRoute, reportHref, route, type Route };
