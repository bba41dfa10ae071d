// Where "Open in editor" links go: the editor and the container → host path mapping, per user.
import { useEffect, useState } from "preact/hooks";
import {
  EDITOR_LABELS,
  EDITORS,
  editorDefaults,
  editorSettings,
  loadEditorDefaults,
  parsePathMap,
  saveEditorSettings,
  userEditorSettings,
  type EditorName,
} from "../state/editor";

function mapText(pairs: [string, string][]): string {
  return pairs.map(([from, to]) => `${from}=${to}`).join("\n");
}

/** A collapsible form for this browser's editor settings. */
function EditorSettingsPanel() {
  useEffect(() => {
    void loadEditorDefaults();
  }, []);
  const current = editorSettings.value;
  const [editor, setEditor] = useState<EditorName>(current.editor);
  const [text, setText] = useState(mapText(current.pathMap));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setEditor(current.editor);
    setText(mapText(current.pathMap));
  }, [current]);

  const save = (event: Event) => {
    event.preventDefault();
    const parsed = parsePathMap(text);
    if (parsed.error !== null) {
      setError(parsed.error);
      return;
    }
    setError(null);
    saveEditorSettings({ editor, pathMap: parsed.pairs });
  };
  const own = userEditorSettings.value !== null;
  return (
    <details class="editor-settings" data-testid="editor-settings">
      <summary>Editor links</summary>
      <form onSubmit={save}>
        <label>
          Open files in{" "}
          <select
            data-testid="editor-choice"
            value={editor}
            onChange={(event) => setEditor(event.currentTarget.value as EditorName)}
          >
            {EDITORS.map((name) => (
              <option key={name} value={name}>
                {EDITOR_LABELS[name]}
              </option>
            ))}
          </select>
        </label>
        <label>
          Path mapping, one CONTAINER=HOST per line (e.g. /srv=/home/me/shop)
          <textarea
            data-testid="editor-path-map"
            rows={3}
            spellcheck={false}
            value={text}
            onInput={(event) => setText(event.currentTarget.value)}
          />
        </label>
        {error !== null && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="muted small" data-testid="editor-source">
          {own
            ? "Your setting, kept in this browser."
            : `The broker's default (${EDITOR_LABELS[editorDefaults.value.editor]}).`}
        </p>
        <button type="submit" class="button small" data-testid="editor-save">
          Save
        </button>{" "}
        {own && (
          <button type="button" class="button small" data-testid="editor-reset" onClick={() => saveEditorSettings(null)}>
            Use the broker's default
          </button>
        )}
      </form>
    </details>
  );
}

export { EditorSettingsPanel };
