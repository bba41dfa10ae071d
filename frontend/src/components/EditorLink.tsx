// "Open in VS Code / PyCharm" for one frame, through the user's editor and path mapping.
import { useEffect } from "preact/hooks";
import { EDITOR_LABELS, editorSettings, editorUrl, loadEditorDefaults, mapPath } from "../state/editor";

interface EditorLinkProps {
  filename: string;
  line: number;
  /** 0-based column of the failing expression, when known. */
  column: number | null;
}

/** A link opening the frame's file at its line in the user's editor; nothing when off. */
function EditorLink({ filename, line, column }: EditorLinkProps) {
  useEffect(() => {
    void loadEditorDefaults();
  }, []);
  const settings = editorSettings.value;
  const url = editorUrl(settings, filename, line, column);
  if (url === null) return null;
  const label = EDITOR_LABELS[settings.editor];
  return (
    <a
      class="button small editor-link"
      data-testid="editor-link"
      href={url}
      title={`Open ${mapPath(filename, settings.pathMap)}:${String(line)} in ${label}`}
    >
      Open in {label}
    </a>
  );
}

export { EditorLink };
