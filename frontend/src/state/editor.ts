// "Open in editor" links: the editor (VS Code or PyCharm URL scheme) and the mapping from the
// app's paths (in a container, say /srv) to the editor's machine (/home/me/shop). The broker
// serves its defaults (GET /api/editor, from --editor / --path-map); each user can override
// them, kept in this browser's localStorage.
import { computed, signal } from "@preact/signals";

/** The editors links can open. */
type EditorName = "none" | "vscode" | "pycharm";

/** Which editor, and container-path → host-path prefixes (longest match wins). */
interface EditorSettings {
  editor: EditorName;
  pathMap: [string, string][];
}

const STORAGE_KEY = "debugbroker:editor";
const EDITORS: readonly EditorName[] = ["none", "vscode", "pycharm"];
const EDITOR_LABELS: Record<EditorName, string> = { none: "no editor", vscode: "VS Code", pycharm: "PyCharm" };
const NONE: EditorSettings = { editor: "none", pathMap: [] };

function isEditor(value: unknown): value is EditorName {
  return typeof value === "string" && (EDITORS as readonly string[]).includes(value);
}

function isPathMap(value: unknown): value is [string, string][] {
  return (
    Array.isArray(value) &&
    value.every(
      (pair) => Array.isArray(pair) && pair.length === 2 && typeof pair[0] === "string" && typeof pair[1] === "string",
    )
  );
}

/** Settings from untrusted JSON (the broker's answer or localStorage), or null. */
function settingsFrom(value: unknown, mapKey: "pathMap" | "path_map"): EditorSettings | null {
  if (value === null || typeof value !== "object") return null;
  const record = value as Record<string, unknown>;
  const pathMap = record[mapKey];
  if (!isEditor(record.editor) || !isPathMap(pathMap)) return null;
  return { editor: record.editor, pathMap };
}

function storedSettings(): EditorSettings | null {
  try {
    const text = localStorage.getItem(STORAGE_KEY);
    return text === null ? null : settingsFrom(JSON.parse(text), "pathMap");
  } catch {
    return null; // storage disabled or garbage: the broker's defaults apply
  }
}

/** The broker's defaults, once loaded. */
const editorDefaults = signal<EditorSettings>(NONE);
/** This user's own choice, or null to follow the broker. */
const userEditorSettings = signal<EditorSettings | null>(storedSettings());
/** What links use now. */
const editorSettings = computed(() => userEditorSettings.value ?? editorDefaults.value);

let defaultsRequested = false;

/** Fetch the broker's defaults once per page. */
async function loadEditorDefaults(): Promise<void> {
  if (defaultsRequested) return;
  defaultsRequested = true;
  try {
    const response = await fetch("/api/editor", { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const found = settingsFrom(await response.json(), "path_map");
    if (found !== null) editorDefaults.value = found;
  } catch {
    // no defaults: links stay off until the user picks an editor
  }
}

/** Keep this user's settings (null: go back to the broker's defaults). */
function saveEditorSettings(settings: EditorSettings | null): void {
  userEditorSettings.value = settings;
  try {
    if (settings === null) localStorage.removeItem(STORAGE_KEY);
    else localStorage.setItem(STORAGE_KEY, JSON.stringify(settings));
  } catch {
    // storage disabled: the choice lasts for this page
  }
}

/** "CONTAINER=HOST" lines (or comma-separated) into pairs; null names the bad entry. */
function parsePathMap(text: string): { pairs: [string, string][]; error: string | null } {
  const pairs: [string, string][] = [];
  for (const raw of text.split(/[\n,]/)) {
    const entry = raw.trim();
    if (entry === "") continue;
    const at = entry.indexOf("=");
    const from = at < 0 ? "" : entry.slice(0, at).trim();
    const to = at < 0 ? "" : entry.slice(at + 1).trim();
    if (from === "" || to === "") return { pairs, error: `"${entry}" is not CONTAINER=HOST` };
    pairs.push([from.replace(/\/+$/, "") || "/", to.replace(/\/+$/, "") || "/"]);
  }
  return { pairs, error: null };
}

/** The path as the editor's machine sees it: the longest matching prefix is replaced. */
function mapPath(path: string, pathMap: [string, string][]): string {
  let best: [string, string] | null = null;
  for (const pair of pathMap) {
    const [from] = pair;
    const matches = path === from || path.startsWith(from === "/" ? "/" : `${from}/`);
    if (matches && (best === null || from.length > best[0].length)) best = pair;
  }
  if (best === null) return path;
  const rest = path.slice(best[0] === "/" ? 0 : best[0].length);
  return best[1] === "/" ? rest || "/" : `${best[1]}${rest}`;
}

/** The editor URL of a file position, or null (no editor, or not a file: "<string>"). */
function editorUrl(settings: EditorSettings, filename: string, line: number, column: number | null): string | null {
  if (settings.editor === "none" || filename === "" || filename.startsWith("<")) return null;
  const path = mapPath(filename, settings.pathMap);
  if (settings.editor === "vscode") {
    const position = column === null ? `:${line}` : `:${line}:${column + 1}`;
    return `vscode://file${path.startsWith("/") ? "" : "/"}${encodeURI(path)}${position}`;
  }
  return `pycharm://open?file=${encodeURIComponent(path)}&line=${line}`;
}

export {
  EDITOR_LABELS,
  EDITORS,
  editorDefaults,
  editorSettings,
  editorUrl,
  loadEditorDefaults,
  mapPath,
  parsePathMap,
  saveEditorSettings,
  userEditorSettings,
  type EditorName,
  type EditorSettings,
};
